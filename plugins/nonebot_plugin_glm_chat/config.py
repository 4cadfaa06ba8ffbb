"""The plugin's settings: every ``GLM_*`` name of the contract, validated at load.

Each field's ``description`` says what the setting accepts, and its example (``examples``, else
the default) is what a start-up error line suggests writing instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from .tools.mcp import parse_servers

DEFAULT_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"
DEFAULT_MODEL = "glm-4-flash-250414"  # free on BigModel; answers without a reasoning phase
DEFAULT_VISION_MODEL = "glm-4.6v-flash"  # free; glm-4v-flash refuses base64 images (1210)
DEFAULT_IMAGE_MODEL = "cogview-3-flash"  # free
DEFAULT_SYSTEM_PROMPT = (
    "你是QQ群里的AI助手，由智谱GLM模型驱动。回答简洁、友好、准确；"
    "不知道就直说，不要编造。不使用Markdown标题和表格。"
)
# The template's stand-ins (.env.prod): a key that is still one of these is no key at all.
KEY_PLACEHOLDER = "your-key-id.your-key-secret"
KEY_PLACEHOLDERS = frozenset({KEY_PLACEHOLDER, "<id.secret>"})  # the second: as hints write it
TOKEN_PLACEHOLDER = "change-me"
CONSOLE_TOKEN_MIN = 16


def _whole(default: int, low: int, high: int | None = None) -> Any:
    """A whole-number setting from ``low`` (to ``high``)."""
    span = f"from {low} to {high}" if high is not None else f"of {low} or more"
    return Field(default, ge=low, le=high, description=f"a whole number {span}")


def _seconds(default: float, *, zero_ok: bool) -> Any:
    """A duration in seconds; ``zero_ok``: 0 is allowed (it turns the feature off)."""
    if zero_ok:
        return Field(default, ge=0, description="a number of seconds, 0 or more")
    return Field(default, gt=0, description="a number of seconds above 0")


def _as_text(value: Any) -> Any:
    """Undo NoneBot's JSON decoding of env values: ``12345`` stays the text ``"12345"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


class Config(BaseModel):
    """Settings read with ``get_plugin_config``; names are the contract's, lower-cased."""

    glm_api_key: str | list[str] | None = Field(
        None,
        description="a platform key (id.secret) or a JSON list of keys",
        examples=['<id.secret>, or GLM_API_KEY=["<id1.secret1>", "<id2.secret2>"]'],
    )
    glm_auth: Literal["jwt", "key"] = Field("jwt", description="jwt or key")
    glm_base_url: str = Field(DEFAULT_BASE_URL, description="an http:// or https:// URL")
    glm_model: str = Field(DEFAULT_MODEL, description="a model name")
    glm_vision_model: str = Field(DEFAULT_VISION_MODEL, description="a model name")
    glm_system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="a text")
    glm_call_mode: Literal["stream", "sync", "async"] = Field(
        "stream", description="one of stream, sync, async"
    )
    glm_db_path: Path = Field(Path("data/glm_chat.db"), description="a file path")
    glm_db_url: str | None = Field(
        None,
        description="a postgresql:// or postgres:// URL, or nothing",
        examples=["postgresql://glm:<password>@127.0.0.1:5432/glm_chat"],
    )
    glm_history_turns: int = _whole(20, 0, 500)
    glm_context_tokens: int = _whole(6000, 200)
    glm_max_input_chars: int = _whole(2000, 1)
    glm_timeout: float = _seconds(60.0, zero_ok=False)
    glm_max_concurrency: int = _whole(5, 1)
    glm_max_retries: int = _whole(3, 0, 10)
    glm_ignore_users: list[str] = Field(
        default_factory=list, description="a JSON list of QQ ids", examples=["[2854196310]"]
    )
    glm_thinking: Literal["enabled", "disabled"] | None = Field(
        None, description="enabled, disabled or nothing", examples=["enabled"]
    )
    glm_groups: list[int] = Field(
        default_factory=list, description="a JSON list of group ids", examples=["[123, 456]"]
    )
    glm_cooldown: float = _seconds(0.0, zero_ok=True)
    glm_daily_tokens: int = _whole(0, 0)
    glm_forward_chars: int = _whole(800, 1)
    glm_private: Literal["on", "superusers", "off"] = Field(
        "on", description="one of on, superusers, off"
    )
    glm_background_messages: int = _whole(20, 0, 200)
    glm_background_minutes: int = _whole(60, 1, 10080)
    glm_summary: Literal["on", "off"] = Field("on", description="on or off")
    glm_summary_model: str | None = Field(
        None, description="a model name, or nothing for GLM_MODEL", examples=["glm-4-flash-250414"]
    )
    glm_chime_gap: float = _seconds(300.0, zero_ok=True)
    glm_console: Literal["on", "off"] = Field("on", description="on or off")
    glm_console_token: str | None = Field(
        None,
        min_length=CONSOLE_TOKEN_MIN,
        description=f"a secret of {CONSOLE_TOKEN_MIN} or more characters, or nothing",
        examples=["<a long random string>"],
    )
    glm_redis_url: str | None = Field(
        None,
        description="a redis://, rediss:// or unix:// URL, or nothing",
        examples=["redis://127.0.0.1:6379/0"],
    )
    glm_image_model: str = Field(DEFAULT_IMAGE_MODEL, description="a model name")
    glm_tools: Literal["on", "off"] = Field("on", description="on or off")
    glm_tool_rounds: int = _whole(3, 1, 10)
    glm_mcp_servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='JSON naming each server, with {"command", "args", "env"} (stdio) or {"url"}',
        examples=['{"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}'],
    )

    @field_validator("glm_api_key", mode="before")
    @classmethod
    def _key_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_as_text(item) for item in value]
        return _as_text(value)

    @field_validator(
        "glm_model",
        "glm_vision_model",
        "glm_image_model",
        "glm_system_prompt",
        "glm_console_token",
        "glm_summary_model",
        "glm_redis_url",
        "glm_db_url",
        mode="before",
    )
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _as_text(value)

    @field_validator("glm_ignore_users", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list):
            return [_as_text(item) for item in value]
        return value

    @field_validator(
        "glm_thinking",
        "glm_console_token",
        "glm_summary_model",
        "glm_redis_url",
        "glm_db_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("glm_mcp_servers")
    @classmethod
    def _mcp_servers(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        parse_servers(value)  # a bad entry is named in the start-up line
        return value

    @field_validator("glm_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("GLM_BASE_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("glm_redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("GLM_REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("glm_db_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("GLM_DB_URL must start with postgresql:// or postgres://")
        return value

    @property
    def api_keys(self) -> list[str]:
        """The configured keys, blanks and the template's placeholder dropped; empty when the
        bot is not configured."""
        return [key for key in self._entries() if key not in KEY_PLACEHOLDERS]

    @property
    def placeholder_key(self) -> str | None:
        """The placeholder ``GLM_API_KEY`` still holds (alone or in a list), if any."""
        return next((key for key in self._entries() if key in KEY_PLACEHOLDERS), None)

    def usable_keys(self) -> tuple[list[str], list[str]]:
        """``(usable, malformed)``: with ``GLM_AUTH=jwt`` a key must look like ``id.secret``."""
        if self.glm_auth == "key":
            return self.api_keys, []
        usable, malformed = [], []
        for key in self.api_keys:
            key_id, dot, secret = key.partition(".")
            (usable if dot and key_id and secret else malformed).append(key)
        return usable, malformed

    def _entries(self) -> list[str]:
        raw = self.glm_api_key
        keys = raw if isinstance(raw, list) else [raw or ""]
        return [key.strip() for key in keys if key and key.strip()]
