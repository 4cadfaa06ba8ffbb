import pytest
from pydantic import ValidationError

from plugins.glm_chat.config import DEFAULT_BASE_URL, Config
from plugins.glm_chat.glm.auth import key_label
from plugins.glm_chat.runtime import close_services, open_services


def test_defaults_are_the_contracts():
    config = Config()
    assert (config.glm_auth, config.glm_model, config.glm_call_mode) == (
        "jwt",
        "glm-4-flash",
        "stream",
    )
    assert config.glm_base_url == DEFAULT_BASE_URL
    assert (config.glm_history_turns, config.glm_context_tokens) == (20, 6000)
    assert config.api_keys == []


@pytest.mark.parametrize(
    ("raw", "keys"),
    [
        ("id.secret", ["id.secret"]),
        (["a.1", " b.2 ", ""], ["a.1", "b.2"]),
        (12345.678, ["12345.678"]),  # NoneBot decodes env values as JSON: a number stays text
        ("", []),
        (None, []),
    ],
)
def test_keys_are_read_as_text(raw, keys):
    assert Config(glm_api_key=raw).api_keys == keys


def test_ids_and_urls_are_normalised():
    config = Config(glm_ignore_users=[123, "456"], glm_base_url="http://127.0.0.1:8000/v1/")
    assert config.glm_ignore_users == ["123", "456"]
    assert config.glm_base_url == "http://127.0.0.1:8000/v1"
    assert Config(glm_ignore_users=789).glm_ignore_users == ["789"]
    assert Config(glm_thinking="").glm_thinking is None


@pytest.mark.parametrize(
    "bad",
    [{"glm_call_mode": "poll"}, {"glm_base_url": "open.bigmodel.cn"}, {"glm_timeout": 0}],
)
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        Config(**bad)


def test_malformed_keys_are_told_apart_in_jwt_mode_only():
    config = Config(glm_api_key=["nodotkey", "good.secret"])
    assert config.usable_keys() == (["good.secret"], ["nodotkey"])
    assert Config(glm_api_key="nodotkey", glm_auth="key").usable_keys() == (["nodotkey"], [])


async def test_only_malformed_keys_means_not_configured(tmp_path, log_lines, monkeypatch):
    from plugins.glm_chat import runtime

    monkeypatch.setattr(runtime, "_services", None)
    services = await open_services(Config(glm_api_key="nodotkey", glm_db_path=tmp_path / "x.db"))
    try:
        assert services.chat.client.keys is None
    finally:
        await close_services()
    errors = [line for line in log_lines if "is not 'id.secret'" in line]
    assert len(errors) == 1 and key_label("nodotkey") in errors[0]
    assert "nodotkey" not in "\n".join(log_lines).replace(key_label("nodotkey"), "")
    assert any("GLM_API_KEY is not set" in line for line in log_lines)
