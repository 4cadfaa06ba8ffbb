"""Typed API errors, how Zhipu's codes map onto them, and the one sentence a user sees."""

from __future__ import annotations

import json
from typing import Any

# Business codes worth another attempt: concurrency, frequency, overload, model busy.
RETRYABLE_CODES = frozenset({"1302", "1303", "1305", "1312"})
# Codes that say this key cannot be used for a while (rejected, out of balance or quota).
KEY_EXHAUSTED_CODES = frozenset({"1113", "1304", "1308", "1309", "1310", "1311", "1313"})


class GLMError(Exception):
    """Any failure of a GLM call: Zhipu's business code, the HTTP status, and retryability."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after: float | None = None  # seconds, from a Retry-After header

    def __str__(self) -> str:
        fields = (("code", self.code), ("status", self.status))
        where = ", ".join(f"{name}={value}" for name, value in fields if value is not None)
        return f"{self.message} ({where})" if where else self.message


class NotConfiguredError(GLMError):
    """No API key is set."""


class AuthenticationError(GLMError):
    """The platform rejected the key or token (HTTP 401, codes 1000-1004)."""


class TokenExpiredError(AuthenticationError):
    """Code 1003: the JWT expired; a fresh one is worth one more try."""


class QuotaExceededError(GLMError):
    """The key is out of balance or over a quota (1113, 1304, 1308-1313 but 1312)."""


class RateLimitError(GLMError):
    """Too many requests or the model is busy (429, 1302, 1303, 1305, 1312)."""

    default_retryable = True


class ContentFilterError(GLMError):
    """The platform blocked the input or the answer (1301, ``finish_reason: sensitive``)."""


class BadRequestError(GLMError):
    """The request itself is wrong (121x, other 4xx)."""


class ModelNotFoundError(BadRequestError):
    """Code 1211: the model name is unknown to the platform."""


class PromptTooLongError(BadRequestError):
    """Code 1261: the prompt is over the model's context length."""


class MessageTooLongError(PromptTooLongError):
    """The prompt is over the model's limit even with no history: the message itself is too long."""


class APITimeoutError(GLMError):
    """No answer within ``GLM_TIMEOUT``."""

    default_retryable = True


class APIConnectionError(GLMError):
    """The endpoint could not be reached."""

    default_retryable = True


class UpstreamError(GLMError):
    """The server failed (5xx) or answered something that is not a usable completion."""


def _code_class(code: str) -> type[GLMError] | None:
    if code in RETRYABLE_CODES:
        return RateLimitError
    if code == "1003":
        return TokenExpiredError
    if code in {"1000", "1001", "1002", "1004"}:
        return AuthenticationError
    if code in KEY_EXHAUSTED_CODES:
        return QuotaExceededError
    if code == "1301":
        return ContentFilterError
    if code == "1211":
        return ModelNotFoundError
    if code == "1261":
        return PromptTooLongError
    if code.startswith(("121", "122")):  # bad parameters, no access to the API or model
        return BadRequestError
    if code.startswith("123"):  # the platform's own processing or network failed
        return UpstreamError
    return None


def _status_class(status: int) -> type[GLMError]:
    if status == 401:
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return UpstreamError
    return BadRequestError


def parse_error_body(body: bytes | str | dict[str, Any]) -> tuple[str | None, str]:
    """Zhipu's ``{"error": {"code", "message"}}`` envelope as ``(code, message)``."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return None, text.strip()[:200] or "empty body"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, str(data)[:200]
    code = error.get("code")
    return (str(code) if code not in (None, "") else None), str(error.get("message") or "")


def error_for(status: int | None, code: str | None, message: str) -> GLMError:
    """The typed error for an HTTP status and/or a business code."""
    cls = _code_class(code) if code else None
    if cls is None:
        cls = _status_class(status) if status else UpstreamError
    retryable = None
    if cls is UpstreamError and (code == "1234" or (status is not None and status >= 500)):
        retryable = True
    return cls(message or "GLM API error", code=code, status=status, retryable=retryable)


# The first class that matches wins: a subclass goes before its base.
_USER_MESSAGES: list[tuple[type[GLMError], str]] = [
    (NotConfiguredError, "机器人还没有配置 GLM_API_KEY，请管理员设置后再试。"),
    (AuthenticationError, "API Key 被平台拒绝了，请管理员检查 GLM_API_KEY。"),
    (QuotaExceededError, "API 额度或余额用完了，请管理员检查账户。"),
    (RateLimitError, "请求太频繁，模型有点忙，请稍后再试。"),
    (ContentFilterError, "这个话题触发了平台的内容审核，换个说法试试吧。"),
    (ModelNotFoundError, "当前模型名称无效，请管理员检查模型设置。"),
    (MessageTooLongError, "这条消息太长了，模型读不下，请精简后再发。"),
    (PromptTooLongError, "对话太长了，请管理员用 /glm reset 清空上下文后再试。"),
    (BadRequestError, "请求被平台拒绝了，请稍后再试或联系管理员。"),
    (APITimeoutError, "模型响应超时了，请稍后再试。"),
    (APIConnectionError, "暂时连不上模型服务，请稍后再试。"),
]
_FALLBACK_MESSAGE = "模型服务出了点问题，请稍后再试。"


# What the platform's most common codes mean, for the operator (the console's error tables).
CODE_MEANINGS = {
    "1000": "鉴权失败",
    "1001": "缺少鉴权信息",
    "1002": "鉴权 token 无效",
    "1003": "鉴权 token 过期",
    "1004": "鉴权失败",
    "1113": "余额不足",
    "1211": "模型不存在",
    "1214": "参数不合法",
    "1261": "输入过长",
    "1301": "内容审核拦截",
    "1302": "并发超限",
    "1303": "请求频率超限",
    "1304": "当日调用次数用完",
    "1305": "服务繁忙",
}


def code_meaning(code: str) -> str:
    """A few words on what an error code (or ``HTTP nnn``, or an error's kind) means."""
    return CODE_MEANINGS.get(code, "")


def user_message(error: GLMError) -> str:
    """The one short Chinese sentence a chat sees for ``error``; never any detail."""
    for cls, text in _USER_MESSAGES:
        if isinstance(error, cls):
            return text
    return _FALLBACK_MESSAGE
