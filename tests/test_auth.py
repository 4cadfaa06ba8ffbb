import time
import warnings

import jwt
import pytest

from plugins.nonebot_plugin_glm_chat.glm.auth import (
    TOKEN_REUSE,
    Credential,
    KeyPool,
    key_label,
    mint_token,
)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_is_the_platform_jwt_field_by_field():
    now = time.time()
    token = mint_token("myid", "mysecret", now)

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "sign_type": "SIGN", "typ": "JWT"}
    claims = jwt.decode(token, "mysecret", algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"api_key", "exp", "timestamp"}
    assert claims["api_key"] == "myid"
    assert claims["timestamp"] == int(now * 1000)  # milliseconds, not seconds
    assert claims["exp"] - claims["timestamp"] == 210_000
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "other", algorithms=["HS256"], options={"verify_exp": False})


def test_token_is_reused_until_shortly_before_expiry():
    clock = Clock()
    credential = Credential("myid.mysecret", "jwt", clock)

    first = credential.bearer()
    clock.now += TOKEN_REUSE - 1
    assert credential.bearer() == first
    assert credential.tokens_minted == 1

    clock.now += 2  # past the reuse window, still 29 s before the token expires
    second = credential.bearer()
    assert second != first
    assert credential.tokens_minted == 2
    claims = jwt.decode(second, "mysecret", algorithms=["HS256"], options={"verify_exp": False})
    assert claims["exp"] > clock.now * 1000


def test_invalidate_forces_a_new_token():
    clock = Clock()
    credential = Credential("myid.mysecret", "jwt", clock)
    first = credential.bearer()
    credential.invalidate()
    clock.now += 0.01
    assert credential.bearer() != first


def test_key_mode_sends_the_raw_key():
    credential = Credential("sk-raw-key", "key")
    assert credential.bearer() == "sk-raw-key"
    assert credential.tokens_minted == 0


def test_labels_never_show_the_secret():
    assert key_label("abc123.supersecret") == "abc123"
    label = key_label("sk-rawsecretkey")
    assert "rawsecret" not in label and label.startswith("key#")
    assert "supersecret" not in repr(Credential("abc123.supersecret", "jwt"))


def test_pool_spreads_requests_and_skips_resting_keys():
    clock = Clock()
    pool = KeyPool(["a.1", "b.2", "c.3"], "jwt", clock)
    assert [pool.pick().label for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]

    pool.rest(next(c for c in pool._credentials if c.label == "b"), 60, "1113")
    assert [pool.pick().label for _ in range(4)] == ["a", "c", "a", "c"]
    assert [r.label for r in pool.resting()] == ["b"]

    clock.now += 61
    assert {pool.pick().label for _ in range(3)} == {"a", "b", "c"}
    assert pool.resting() == []


def test_pool_with_every_key_resting_uses_the_one_back_soonest():
    clock = Clock()
    pool = KeyPool(["a.1", "b.2"], "jwt", clock)
    a, b = pool._credentials
    pool.rest(a, 100, "401")
    pool.rest(b, 50, "1113")
    assert pool.pick() is b


def test_a_short_secret_is_signed_quietly_without_silencing_the_host_bot():
    """Our own 16-character secrets raise no warning, and the process's warning filters stay
    as they were: another plugin's short HMAC key still gets PyJWT's advice."""
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mint_token("id", "0123456789abcdef", time.time())
        assert caught == []
        jwt.encode({"x": 1}, "short", algorithm="HS256")
    assert warnings.filters == filters
    assert [w.category for w in caught] == [jwt.InsecureKeyLengthWarning]
