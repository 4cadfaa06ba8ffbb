"""Inside someone else's bot: glm-chat extends the OneBot adapter's event models, it does not
replace another plugin's."""

from __future__ import annotations

import time

import pytest
from nonebot.adapters.onebot.v11 import Adapter, GroupMessageEvent, PrivateMessageEvent

from plugins.nonebot_plugin_glm_chat.qq.intake import register_arrival_models


def _raw(message_type: str) -> dict[str, object]:
    raw: dict[str, object] = {
        "time": int(time.time()),
        "self_id": 900001,
        "post_type": "message",
        "message_type": message_type,
        "sub_type": "normal" if message_type == "group" else "friend",
        "message_id": 1,
        "user_id": 42,
        "message": [{"type": "text", "data": {"text": "你好"}}],
        "raw_message": "你好",
        "font": 0,
        "sender": {"user_id": 42, "nickname": "小明"},
    }
    if message_type == "group":
        raw["group_id"] = 1
    return raw


@pytest.fixture
def adapter_models():
    """The adapter's process-wide model registry, restored after the test."""
    models = list(Adapter.event_models.models)
    yield
    Adapter.event_models.models[:] = models
    Adapter.event_models._refresh_tree()


@pytest.mark.usefixtures("adapter_models")
def test_another_plugins_event_model_is_kept_and_still_takes_its_place():
    class Decorated(GroupMessageEvent):  # another plugin's own group message model
        def shout(self) -> str:
            return self.get_plaintext() + "！"

    Decorated.__qualname__ = "Decorated"  # as a plugin's module-level class is named

    Adapter.add_custom_model(Decorated)
    register_arrival_models()  # as when glm-chat loads after that plugin
    event = Adapter.json_to_event(_raw("group"))
    assert isinstance(event, Decorated) and event.shout() == "你好！"
    assert type(event).__name__ == "Decorated"
    assert "_glm_arrival" in type(event).__private_attributes__
    private = Adapter.json_to_event(_raw("private"))
    assert type(private).__name__ == "PrivateMessageEvent"
    assert isinstance(private, PrivateMessageEvent)


@pytest.mark.usefixtures("adapter_models")
def test_registering_twice_does_not_stack_models():
    before = list(Adapter.event_models.models)
    register_arrival_models()
    assert Adapter.event_models.models == before
