"""The plugin's settings: every ``GLM_*`` name of the contract, validated at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

DEFAULT_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"
DEFAULT_SYSTEM_PROMPT = (
    "你是QQ群里的AI助手，由智谱GLM模型驱动。回答简洁、友好、准确；"
    "不知道就直说，不要编造。不使用Markdown标题和表格。"
)


def _as_text(value: Any) -> Any:
    """Undo NoneBot's JSON decoding of env values: ``12345`` stays the text ``"12345"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


class Config(BaseModel):
    """Settings read with ``get_plugin_config``; names are the contract's, lower-cased."""

    glm_api_key: str | list[str] | None = None
    glm_auth: Literal["jwt", "key"] = "jwt"
    glm_base_url: str = DEFAULT_BASE_URL
    glm_model: str = "glm-4-flash"
    glm_vision_model: str = "glm-4v-flash"
    glm_system_prompt: str = DEFAULT_SYSTEM_PROMPT
    glm_call_mode: Literal["stream", "sync", "async"] = "stream"
    glm_db_path: Path = Path("data/glm_chat.db")
    glm_history_turns: int = Field(20, ge=0, le=500)
    glm_context_tokens: int = Field(6000, ge=200)
    glm_max_input_chars: int = Field(2000, ge=1)
    glm_timeout: float = Field(60.0, gt=0)
    glm_max_concurrency: int = Field(5, ge=1)
    glm_max_retries: int = Field(3, ge=0, le=10)
    glm_ignore_users: list[str] = Field(default_factory=list)
    glm_thinking: Literal["enabled", "disabled"] | None = None
    glm_groups: list[int] = Field(default_factory=list)
    glm_cooldown: float = Field(0.0, ge=0)
    glm_daily_tokens: int = Field(0, ge=0)
    glm_forward_chars: int = Field(800, ge=1)

    @field_validator("glm_api_key", mode="before")
    @classmethod
    def _key_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_as_text(item) for item in value]
        return _as_text(value)

    @field_validator("glm_ignore_users", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, (str, int)):
            value = [value]
        return [str(item) for item in value]

    @field_validator("glm_thinking", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("glm_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("GLM_BASE_URL must start with http:// or https://")
        return value.rstrip("/")

    @property
    def api_keys(self) -> list[str]:
        """The configured keys, blanks dropped; empty when the bot is not configured."""
        raw = self.glm_api_key
        keys = raw if isinstance(raw, list) else [raw or ""]
        return [key.strip() for key in keys if key and key.strip()]

    def usable_keys(self) -> tuple[list[str], list[str]]:
        """``(usable, malformed)``: with ``GLM_AUTH=jwt`` a key must look like ``id.secret``."""
        if self.glm_auth == "key":
            return self.api_keys, []
        usable, malformed = [], []
        for key in self.api_keys:
            key_id, dot, secret = key.partition(".")
            (usable if dot and key_id and secret else malformed).append(key)
        return usable, malformed
