from plugins.glm_chat.chat.prompt import build_messages, estimate_tokens, history_tokens
from plugins.glm_chat.memory.models import Speaker, Turn

ALICE = Speaker("1001", "Alice")
BOB = Speaker("1002", "Bob")


def roles(messages):
    return [m["role"] for m in messages]


def test_system_then_history_then_the_new_message_with_speaker_labels():
    history = [Turn("我叫Alice", "你好Alice", ALICE), Turn("我叫Bob", "你好Bob", BOB)]
    messages = build_messages(
        "persona", history, "我们分别叫什么？", ALICE, max_turns=20, token_budget=6000
    )
    assert roles(messages) == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "persona"
    assert messages[1]["content"] == "Alice(1001): 我叫Alice"
    assert messages[3]["content"] == "Bob(1002): 我叫Bob"
    assert messages[-1]["content"] == "Alice(1001): 我们分别叫什么？"


def test_private_messages_carry_no_label():
    messages = build_messages("p", [Turn("hi", "hello")], "again", max_turns=5, token_budget=999)
    assert [m["content"] for m in messages] == ["p", "hi", "hello", "again"]


def test_turn_limit_keeps_the_newest_turns():
    history = [Turn(f"q{i}", f"a{i}") for i in range(10)]
    messages = build_messages("p", history, "now", max_turns=3, token_budget=10**6)
    assert [m["content"] for m in messages[1:-1:2]] == ["q7", "q8", "q9"]
    assert build_messages("p", history, "now", max_turns=0, token_budget=10**6)[1:] == [
        {"role": "user", "content": "now"}
    ]


def test_token_budget_drops_the_oldest_whole_turns():
    history = [Turn("旧" * 300, "答" * 300), Turn("中" * 300, "答" * 300), Turn("新", "答")]
    messages = build_messages("p", history, "问题", max_turns=20, token_budget=800)
    contents = [m["content"] for m in messages]
    assert contents == ["p", "中" * 300, "答" * 300, "新", "答", "问题"]
    assert sum(estimate_tokens(c) + 4 for c in contents) <= 800
    # Even when nothing fits, the question still goes out, after the system prompt.
    tiny = build_messages("p", history, "问题", max_turns=20, token_budget=10)
    assert roles(tiny) == ["system", "user"]


def test_never_starts_with_assistant_and_never_sends_empty_content():
    history = [Turn("", "orphan answer"), Turn("q", "  "), Turn("q2", "a2")]
    messages = build_messages("  ", history, "now", max_turns=20, token_budget=6000)
    assert roles(messages) == ["user", "assistant", "user"]
    assert all(m["content"].strip() for m in messages)


def test_estimate_counts_cjk_heavier_than_latin():
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("hello world!") == 4
    assert history_tokens([Turn("你好", "hi")]) == 2 + 1 + 8
