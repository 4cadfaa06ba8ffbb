"""A finished completion, assembled from a JSON body or from stream chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ContentFilterError, UpstreamError, error_for

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_REASONING_BLOCK_MODELS = ("glm-z1",)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, data: Any) -> Usage:
        if not isinstance(data, dict):
            return cls()

        def count(name: str) -> int:
            value = data.get(name)
            return value if isinstance(value, int) and value >= 0 else 0

        prompt, completion = count("prompt_tokens"), count("completion_tokens")
        return cls(prompt, completion, count("total_tokens") or prompt + completion)


@dataclass(frozen=True)
class ToolCall:
    """A function the model asked to call: its call id, name and arguments (JSON text, as the
    model wrote it: it may not parse)."""

    id: str
    name: str
    arguments: str = ""

    def as_message_part(self) -> dict[str, Any]:
        """The call as the assistant message that asked for it carries it back."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Completion:
    """The answer the chat may see, with what the platform reported about it. With
    ``tool_calls`` the model asks for tools first; ``content`` may then be empty."""

    content: str
    model: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    reasoning: str = ""
    web_search: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)


def _writes_reasoning_blocks(model: str) -> bool:
    """Whether ``model`` writes its reasoning into the text, in a leading ``<think>`` block."""
    return model.lower().startswith(_REASONING_BLOCK_MODELS)


def split_reasoning(text: str, model: str = "") -> tuple[str, str]:
    """Separate a leading ``<think>`` block from the answer: ``(answer, reasoning)``.

    The block runs to the first ``</think>``. One that never closes is all reasoning, unless
    ``model`` is named and writes no such blocks: its answer merely starts with the tag. GLM-Z1
    text with a ``</think>`` but no ``<think>`` before it lost its opening tag on the way. Any
    other mention of the tags belongs to the answer.
    """
    body = text.lstrip()
    if body.startswith(_THINK_OPEN):
        reasoning, closed, answer = body[len(_THINK_OPEN) :].partition(_THINK_CLOSE)
        if closed or not model or _writes_reasoning_blocks(model):
            return answer.strip(), reasoning.strip()
    elif _writes_reasoning_blocks(model):
        reasoning, closed, answer = body.partition(_THINK_CLOSE)
        if closed and _THINK_OPEN not in reasoning:
            return answer.strip(), reasoning.strip()
    return text.strip(), ""


def check_finish_reason(reason: str | None) -> None:
    """Raise for a finish reason that means the answer must not be used."""
    if reason == "sensitive":
        raise ContentFilterError("answer blocked by content review", code="1301")
    if reason == "network_error":
        raise UpstreamError("model inference failed mid-answer", retryable=True)


def _finish(
    content: str,
    reasoning: str,
    model: str,
    reason: str | None,
    usage: Usage,
    search: list,
    calls: list[ToolCall],
) -> Completion:
    check_finish_reason(reason)
    answer, think = split_reasoning(content, model)
    reasoning = "\n".join(part for part in (reasoning.strip(), think) if part)
    if not answer and not calls:
        raise UpstreamError("the model returned an empty answer")
    return Completion(answer, model, reason, usage, reasoning, search, calls)


def _tool_call(data: Any, index: int) -> ToolCall | None:
    """A whole tool call from a message's ``tool_calls`` entry (None: not a function call)."""
    if not isinstance(data, dict):
        return None
    function = data.get("function") if isinstance(data.get("function"), dict) else {}
    name = _text(function.get("name"))
    if not name:
        return None
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # some answers carry the arguments as an object
        arguments = json.dumps(arguments, ensure_ascii=False) if arguments is not None else ""
    return ToolCall(_text(data.get("id")) or f"call_{index}", name, arguments)


def _raise_if_error(data: dict[str, Any], status: int | None) -> None:
    error = data.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise error_for(status, str(code) if code else None, str(error.get("message") or ""))


def _web_search(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = data.get("web_search")
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def completion_from_json(data: Any, status: int | None = 200) -> Completion:
    """A completion from a sync response body (or an async task's result)."""
    if not isinstance(data, dict):
        raise UpstreamError("the response is not a JSON object")
    _raise_if_error(data, status)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError("the response has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    listed = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    calls = [call for i, item in enumerate(listed) if (call := _tool_call(item, i))]
    return _finish(
        _text(message.get("content")),
        _text(message.get("reasoning_content")),
        str(data.get("model") or ""),
        choice.get("finish_reason"),
        Usage.from_json(data.get("usage")),
        _web_search(data),
        calls,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class StreamAssembler:
    """Feeds on SSE data payloads and assembles the completion they carry."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._model = ""
        self._finish_reason: str | None = None
        self._usage = Usage()
        self._web_search: list[dict[str, Any]] = []
        self._calls: dict[int, dict[str, str]] = {}  # by index: id, name, arguments so far
        self.done = False

    def feed(self, payload: str) -> str:
        """Take one event's data and return the answer text it adds; raises the typed error an
        error frame carries."""
        if payload.strip() == "[DONE]":
            self.done = True
            return ""
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise UpstreamError("a stream frame is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError("a stream frame is not a JSON object")
        _raise_if_error(data, None)
        self._model = str(data.get("model") or self._model)
        if "usage" in data:
            self._usage = Usage.from_json(data["usage"])
        self._web_search.extend(_web_search(data))
        added = ""
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if text := _text(delta.get("content")):
                self._content.append(text)
                added += text
            self._reasoning.append(_text(delta.get("reasoning_content")))
            if isinstance(delta.get("tool_calls"), list):
                self._feed_calls(delta["tool_calls"])
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                check_finish_reason(self._finish_reason)
        return added

    def _feed_calls(self, parts: list[Any]) -> None:
        """Tool calls arrive whole or in pieces: a call's first piece has its id and name,
        later ones (same ``index``) add to its arguments."""
        for position, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            index = part.get("index") if isinstance(part.get("index"), int) else position
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            function = part.get("function") if isinstance(part.get("function"), dict) else {}
            call["id"] = call["id"] or _text(part.get("id"))
            call["name"] = call["name"] or _text(function.get("name"))
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call["arguments"] += arguments
            elif arguments is not None:
                call["arguments"] += json.dumps(arguments, ensure_ascii=False)

    def result(self) -> Completion:
        """The completion, once the stream has ended."""
        if self._finish_reason is None and not self.done:
            raise UpstreamError("the stream ended before the answer was complete", retryable=True)
        return _finish(
            "".join(self._content),
            "".join(self._reasoning),
            self._model,
            self._finish_reason,
            self._usage,
            self._web_search,
            [
                ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
                for index, call in sorted(self._calls.items())
                if call["name"]
            ],
        )
