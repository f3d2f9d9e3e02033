"""Failed FTP logins from one address are answered ever later, then refused for a while."""

from __future__ import annotations

from stockhub.gateways.login_throttle import LoginThrottle


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_slow_down_then_lock_out_then_expire():
    clock = Clock()
    throttle = LoginThrottle(delay=1.0, max_failures=4, lockout=60, clock=clock)
    assert [throttle.failed("10.0.0.1") for _ in range(3)] == [1.0, 2.0, 3.0]
    assert throttle.refused_for("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.refused_for("10.0.0.1") == 60
    assert throttle.refused_for("10.0.0.2") == 0  # other addresses are not affected
    clock.now += 61
    assert throttle.refused_for("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == 1.0  # a fresh start


def test_old_failures_are_forgotten_and_success_resets():
    clock = Clock()
    throttle = LoginThrottle(delay=0.5, max_failures=3, lockout=60, clock=clock)
    throttle.failed("a")
    throttle.failed("a")
    clock.now += 61
    throttle.failed("a")  # the first two are older than the period
    assert throttle.refused_for("a") == 0
    throttle.succeeded("a")
    assert throttle.failed("a") == 0.5
