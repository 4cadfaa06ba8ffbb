import re
from pathlib import Path

import pytest
from nonebot.config import DotEnvSettingsSource
from pydantic import ValidationError

from plugins.nonebot_plugin_glm_chat import startup
from plugins.nonebot_plugin_glm_chat.config import (
    DEFAULT_BASE_URL,
    KEY_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    Config,
)
from plugins.nonebot_plugin_glm_chat.glm.auth import key_label
from plugins.nonebot_plugin_glm_chat.runtime import close_services, open_services
from plugins.nonebot_plugin_glm_chat.startup import (
    keys_to_use,
    load_config,
    secrets_place,
    setting_line,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".env.prod"
SETTING_LINE = re.compile(r"^(# )?([A-Z][A-Z0-9_]*)=(.*)$")
NOT_CONFIGURED = "so the bot answers that it is not configured"


def told(log_lines: list[str]) -> list[str]:
    return [line.rstrip("\n") for line in log_lines]


def test_defaults_are_the_contracts():
    config = Config()
    assert (config.glm_auth, config.glm_model, config.glm_call_mode) == (
        "jwt",
        "glm-4-flash-250414",
        "stream",
    )
    assert config.glm_vision_model == "glm-4.6v-flash"
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
        (KEY_PLACEHOLDER, []),  # the template's placeholder is no key
        ("<id.secret>", []),  # nor is the hint's, copied as it stands
        ([KEY_PLACEHOLDER, "a.1"], ["a.1"]),
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
    assert Config(glm_model=4).glm_model == "4"  # a dotenv value NoneBot read as JSON


@pytest.mark.parametrize(
    "bad",
    [
        {"glm_call_mode": "poll"},
        {"glm_base_url": "open.bigmodel.cn"},
        {"glm_timeout": 0},
        {"glm_redis_url": "127.0.0.1:6379"},
        {"glm_db_url": "mysql://127.0.0.1/glm"},
    ],
)
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        Config(**bad)


def test_every_setting_says_what_it_accepts_with_an_example():
    for name, field in Config.model_fields.items():
        assert field.description, name
        env = name.upper()
        accepted = re.escape(field.description)
        line = setting_line(name, "?")
        assert re.fullmatch(rf"{env}: .+ is not {accepted}; write e\.g\. {env}=\S.*", line), line


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            {"GLM_HISTORY_TURNS": "-1"},
            [
                "GLM_HISTORY_TURNS: '-1' is not a whole number from 0 to 500;"
                " write e.g. GLM_HISTORY_TURNS=20"
            ],
        ),
        (
            {"GLM_GROUPS": "[123, abc", "GLM_IGNORE_USERS": "bot"},
            [
                "GLM_IGNORE_USERS: 'bot' is not a JSON list of QQ ids;"
                " write e.g. GLM_IGNORE_USERS=[2854196310]",
                "GLM_GROUPS: '[123, abc' is not a JSON list of group ids;"
                " write e.g. GLM_GROUPS=[123, 456]",
            ],
        ),
        (
            {"GLM_GROUPS": '[123, "abc"]', "GLM_THINKING": "on", "GLM_CONTEXT_TOKENS": "100"},
            [
                "GLM_CONTEXT_TOKENS: '100' is not a whole number of 200 or more;"
                " write e.g. GLM_CONTEXT_TOKENS=6000",
                "GLM_THINKING: 'on' is not enabled, disabled or nothing;"
                " write e.g. GLM_THINKING=enabled",
                "GLM_GROUPS: '[123, \"abc\"]' is not a JSON list of group ids;"
                " write e.g. GLM_GROUPS=[123, 456]",
            ],
        ),
        (
            {"GLM_MCP_SERVERS": '{"fetch": {"args": ["x"]}}', "GLM_TOOL_ROUNDS": "0"},
            [
                "GLM_TOOL_ROUNDS: '0' is not a whole number from 1 to 10;"
                " write e.g. GLM_TOOL_ROUNDS=3",
                'GLM_MCP_SERVERS: \'{"fetch": {"args": ["x"]}}\' is not JSON naming each'
                ' server, with {"command", "args", "env"} (stdio) or {"url"}; write e.g.'
                ' GLM_MCP_SERVERS={"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}',
            ],
        ),
        (
            {"GLM_CALL_MODE": "streaming", "ONEBOT_ACCESS_TOKEN": TOKEN_PLACEHOLDER},
            [
                "GLM_CALL_MODE: 'streaming' is not one of stream, sync, async;"
                " write e.g. GLM_CALL_MODE=stream",
                "ONEBOT_ACCESS_TOKEN is still the template's published 'change-me', so anyone"
                " could connect as your QQ account; set a long random string in .env.test or"
                " the environment, and the same token in the QQ client",
            ],
        ),
    ],
)
def test_bad_settings_stop_the_start_one_line_each(env, lines, monkeypatch, log_lines):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_config()
    assert stopped.value.code == 1
    assert told(log_lines) == lines


@pytest.mark.parametrize(
    ("setting", "url", "package", "extra"),
    [
        ("GLM_REDIS_URL", "redis://127.0.0.1:6379/0", "redis", "redis"),
        ("GLM_DB_URL", "postgres://glm:hunter2@db/glm", "asyncpg", "postgres"),
    ],
)
def test_a_url_without_its_package_stops_the_start_in_one_line(
    setting, url, package, extra, monkeypatch, log_lines
):
    monkeypatch.setenv(setting, url)
    monkeypatch.setenv("ONEBOT_ACCESS_TOKEN", "a-long-random-token")
    find_spec = startup.importlib.util.find_spec
    monkeypatch.setattr(
        startup.importlib.util,
        "find_spec",
        lambda name, *args: None if name == package else find_spec(name, *args),
    )
    with pytest.raises(SystemExit):
        load_config()
    assert told(log_lines) == [
        f"{setting} is set, but the {package} package is not installed: pip install"
        f' "nonebot-plugin-glm-chat[{extra}]" (in the checkout: pip install ".[{extra}]")'
    ]


def test_a_database_url_is_checked_without_showing_its_password(monkeypatch, log_lines):
    monkeypatch.setenv("GLM_DB_URL", "mysql://glm:hunter2@db/glm")
    monkeypatch.setenv("ONEBOT_ACCESS_TOKEN", "a-long-random-token")
    with pytest.raises(SystemExit):
        load_config()
    assert told(log_lines) == [
        "GLM_DB_URL: the value is not a postgresql:// or postgres:// URL, or nothing;"
        " write e.g. GLM_DB_URL=postgresql://glm:<password>@127.0.0.1:5432/glm_chat"
    ]


def test_good_settings_load(monkeypatch, log_lines):
    monkeypatch.setenv("GLM_GROUPS", "[123, 456]")
    monkeypatch.setenv("ONEBOT_ACCESS_TOKEN", "a-long-random-token")
    assert load_config().glm_groups == [123, 456]
    assert told(log_lines) == []


def test_the_hint_names_the_file_that_is_read(monkeypatch):
    monkeypatch.setattr(startup, "env_files", lambda: (".env", ".env.dev", ".env.local"))
    assert secrets_place() == ".env.local or the environment"
    monkeypatch.setattr(startup, "env_files", lambda: (".env", ".env.dev"))
    assert secrets_place() == ".env.dev or the environment"
    monkeypatch.setattr(startup, "env_files", tuple)
    assert secrets_place() == "the environment"


FIX = "copy the whole key (id.secret) from the BigModel console, or set GLM_AUTH=key for a raw key"


@pytest.mark.parametrize(
    ("key", "usable", "line"),
    [
        (
            None,
            [],
            f"GLM_API_KEY is not set, {NOT_CONFIGURED}; put GLM_API_KEY=<id.secret> in"
            " .env.local or the environment",
        ),
        (
            KEY_PLACEHOLDER,
            [],
            f"GLM_API_KEY is still the placeholder {KEY_PLACEHOLDER}, {NOT_CONFIGURED};"
            " put your key from the BigModel console in .env.local or the environment",
        ),
        (
            ["<id.secret>", "id.s"],
            ["id.s"],
            "GLM_API_KEY: the placeholder <id.secret> is not used",
        ),
        (
            "nodot",
            [],
            f"the only GLM_API_KEY entry ({key_label('nodot')}) is not id.secret,"
            f" {NOT_CONFIGURED}; {FIX}",
        ),
        (
            ["a", "b"],
            [],
            f"none of the 2 GLM_API_KEY entries ({key_label('a')},"
            f" {key_label('b')}) is id.secret, {NOT_CONFIGURED}; {FIX}",
        ),
        (
            ["a", "id.s"],
            ["id.s"],
            f"GLM_API_KEY entry {key_label('a')} is not id.secret and is not used; {FIX}",
        ),
        ("id.secret", ["id.secret"], None),
    ],
)
def test_one_true_line_about_the_keys(key, usable, line, monkeypatch, log_lines):
    monkeypatch.setattr(startup, "env_files", lambda: (".env", ".env.dev", ".env.local"))
    assert keys_to_use(Config(glm_api_key=key)) == usable
    assert told(log_lines) == ([line] if line else [])


async def test_only_malformed_keys_means_not_configured(tmp_path, log_lines, monkeypatch):
    from plugins.nonebot_plugin_glm_chat import runtime

    monkeypatch.setattr(runtime, "_services", None)
    services = await open_services(Config(glm_api_key="nodotkey", glm_db_path=tmp_path / "x.db"))
    try:
        assert services.chat.client.keys is None
    finally:
        await close_services()
    errors = [line for line in log_lines if "is not id.secret" in line]
    assert len(errors) == 1 and key_label("nodotkey") in errors[0]
    assert NOT_CONFIGURED in errors[0]
    assert "nodotkey" not in "\n".join(log_lines).replace(key_label("nodotkey"), "")
    assert not any("GLM_API_KEY is not set" in line for line in log_lines)  # no contradiction


def template_lines() -> list[str]:
    return TEMPLATE.read_text("utf-8").splitlines()


def test_uncommenting_any_template_line_gives_the_default(tmp_path, monkeypatch):
    uncommented = [
        line.removeprefix("# ")
        for line in template_lines()
        if (match := SETTING_LINE.match(line)) and match[1] and match[2].startswith("GLM_")
    ]
    assert {line.split("=", 1)[0].lower() for line in uncommented} == set(Config.model_fields)
    dotenv = tmp_path / ".env.uncommented"
    dotenv.write_text("\n".join(uncommented), "utf-8")
    for name in Config.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    read = DotEnvSettingsSource(
        Config, env_file=dotenv, env_file_encoding="utf-8", env_nested_delimiter="__"
    )()
    config = Config.model_validate(read)
    assert config.model_dump(exclude={"glm_api_key"}) == Config().model_dump(
        exclude={"glm_api_key"}
    )
    assert config.api_keys == []  # the placeholder is no key


def test_every_template_line_says_what_it_does_and_holds_no_secret():
    lines = template_lines()
    for number, line in enumerate(lines):
        if match := SETTING_LINE.match(line):
            above = lines[number - 1]
            assert above.startswith("# ") and not SETTING_LINE.match(above), line
            assert not above.startswith("# ---"), line
            if match[2] in ("GLM_API_KEY", "ONEBOT_ACCESS_TOKEN"):
                assert match[1] and match[3] in (KEY_PLACEHOLDER, TOKEN_PLACEHOLDER), line


def test_the_secrets_file_is_ignored_by_git():
    assert ".env.local" in (ROOT / ".gitignore").read_text("utf-8").splitlines()
