"""A bearer token's hash is remembered for the requests to come, but only for a token of a
plausible length: made-up header-sized tokens must not fill the process's memory."""

from stockhub import security

SECRET = b"s" * 32


def test_a_token_hashes_as_stored_tokens_do_whether_remembered_or_not():
    for token in ("shk_" + "a" * 43, "x" * 10_000):
        assert security.bearer_hash(SECRET, token) == security.key_hash(SECRET, token)


def test_only_tokens_of_a_plausible_length_are_remembered():
    security._remembered_hash.cache_clear()
    for n in range(50):
        security.bearer_hash(SECRET, f"{n:06d}" + "y" * 8_000)
    assert security._remembered_hash.cache_info().currsize == 0
    security.bearer_hash(SECRET, "shk_" + "b" * 43)
    security.bearer_hash(SECRET, "shk_" + "b" * 43)
    assert security._remembered_hash.cache_info().currsize == 1 and security._remembered_hash.cache_info().hits == 1
