"""The delivery rules: what an answer means, the retry schedule, Retry-After, receiver addresses."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from stockhub import outbound
from stockhub.domain.webhooks import AddressPolicy, Verdict, parse_retry_after, retry_delay, verdict
from stockhub.settings import Settings

SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


def test_answers_are_judged_as_the_spec_says():
    assert verdict(200) is verdict(204) is Verdict.SUCCEEDED
    assert verdict(None) is verdict(500) is verdict(503) is verdict(429) is Verdict.RETRY
    assert verdict(410) is Verdict.GONE
    assert verdict(400) is verdict(301) is Verdict.REFUSED


def test_retries_follow_the_schedule_with_jitter_then_stop():
    rng = random.Random(1)
    for attempts, planned in enumerate(SCHEDULE[1:], start=1):
        delay = retry_delay(attempts, SCHEDULE, rng=rng)
        assert 0.8 * planned <= delay <= 1.2 * planned
    assert retry_delay(len(SCHEDULE), SCHEDULE) is None
    assert retry_delay(1, SCHEDULE, retry_after=120, rng=rng) == 120
    assert retry_delay(2, SCHEDULE, retry_after=1, rng=rng) >= 240


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Mon, 23 Nov 2026 12:01:00 GMT", now) == 60
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("address", "refused_by_default"),
    [
        ("93.184.215.14", False),
        ("2606:4700::1111", False),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("0.0.0.0", True),
    ],
)
def test_receiver_addresses(address, refused_by_default):
    assert (AddressPolicy().refusal(address) is not None) is refused_by_default


def test_loopback_and_private_receivers_need_their_settings():
    assert AddressPolicy(allow_loopback=True).refusal("127.0.0.1") is None
    assert AddressPolicy(allow_loopback=True).refusal("10.0.0.1") is not None
    assert AddressPolicy(allow_private=True).refusal("10.0.0.1") is None
    assert AddressPolicy(allow_private=True).refusal("127.0.0.1") is not None


def test_urls_must_be_https_to_public_addresses_by_default():
    settings = Settings(secret_key="x")
    outbound.check_url("https://93.184.215.14/hooks", settings)
    for url, why in [
        ("http://93.184.215.14/hooks", "https"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://[::1]:8443/hooks", "loopback"),
        ("https://10.0.0.8/hooks", "private"),
        ("/hooks", "absolute"),
    ]:
        with pytest.raises(outbound.Refused, match=why):
            outbound.check_url(url, settings)
    demo = Settings(secret_key="x", webhook_allow_loopback=True)
    outbound.check_url("http://127.0.0.1:8080/hooks", demo)
    with pytest.raises(outbound.Refused, match="https"):
        outbound.check_url("http://93.184.215.14/hooks", demo)


def test_a_refusal_names_the_setting_that_would_allow_the_receiver():
    settings = Settings(secret_key="x")
    for url, setting in [
        ("https://127.0.0.1:8099/hooks", "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK=true"),
        ("http://127.0.0.1:8099/hooks", "STOCKHUB_WEBHOOK_ALLOW_LOOPBACK=true"),
        ("https://10.0.0.8/hooks", "STOCKHUB_WEBHOOK_ALLOW_PRIVATE=true"),
        ("https://169.254.169.254/", "STOCKHUB_WEBHOOK_ALLOW_PRIVATE=true"),
    ]:
        with pytest.raises(outbound.Refused) as refused:
            outbound.check_url(url, settings)
        assert setting in str(refused.value), (url, str(refused.value))
    with pytest.raises(outbound.Refused) as multicast:
        outbound.check_url("https://224.0.0.1/hooks", Settings(secret_key="x"))
    assert "ALLOW" not in str(multicast.value)  # no setting allows it


def test_the_direct_signature_is_the_standard_webhooks_librarys():
    """deliver.sign computes the HMAC itself (cheaper per delivery): it must be byte for byte the library's."""
    import os
    import random
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    from stockhub.jobs.deliver import sign

    chooser = random.Random(13)
    for n in range(300):
        key = os.urandom(chooser.choice([1, 16, 32, 64, 100]))
        message_id = chooser.choice(["evt_", "msg_", "é"]) + str(chooser.getrandbits(64))
        body = "".join(chooser.choice(['{"a":1}', "ü", "x", "\\n", "€", '"']) for _ in range(chooser.randrange(0, 200)))
        seconds = chooser.randrange(0, 4_000_000_000)
        at = datetime.fromtimestamp(seconds + chooser.random() * 0.999, UTC)
        assert sign(key, message_id, int(at.timestamp()), body.encode()) == Webhook(key).sign(message_id, at, body)
