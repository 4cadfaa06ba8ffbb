"""The web console's parts without a server: who gets in (token, sessions, the lockout, the
same-origin rule), how the usage chart is drawn, what a settings change may set, and the
GLM_CONSOLE_TOKEN setting."""

import json
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from plugins.nonebot_plugin_glm_chat.chat.context import BACKGROUND_HEADER, CHIME_CUE, QUOTE_MARK
from plugins.nonebot_plugin_glm_chat.chat.service import PERSONA_LIMIT
from plugins.nonebot_plugin_glm_chat.console import access, api
from plugins.nonebot_plugin_glm_chat.console.access import (
    FAILURES_ALLOWED,
    LOCKOUT_SECONDS,
    SESSION_SECONDS,
    Gate,
    Lockout,
    load_or_create_token,
    same_origin,
    token_path,
)
from plugins.nonebot_plugin_glm_chat.console.charts import nice_ceiling, short_number, stacked_bars
from plugins.nonebot_plugin_glm_chat.console.reads import (
    _turn,
    context_parts,
    context_title,
    is_remark,
)
from plugins.nonebot_plugin_glm_chat.console.web import duration, templates
from plugins.nonebot_plugin_glm_chat.console.writes import (
    ChangeRefused,
    SettingsPatch,
    known_chat,
    option_changes,
)
from plugins.nonebot_plugin_glm_chat.memory.models import Speaker, StoredTurn, Summary, Turn
from plugins.nonebot_plugin_glm_chat.startup import load_config

TOKEN = "the-console-token-0123456789"
ORIGIN = "http://127.0.0.1:8080"
CHINESE_SENTENCE = re.compile(r"[\u4e00-\u9fff].*。$")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the lockout ----------------------------------------------------------------------------


def fail(lockout: Lockout, address: str, times: int, clock: Clock, every: float = 0.0) -> None:
    for _ in range(times):
        lockout.failed(address)
        clock.now += every


def test_ten_wrong_tokens_within_a_minute_lock_out_that_address_only():
    clock = Clock()
    lockout = Lockout(clock)
    fail(lockout, "10.0.0.1", FAILURES_ALLOWED - 1, clock, every=6)
    assert lockout.retry_after("10.0.0.1") == 0  # nine: still welcome
    lockout.failed("10.0.0.1")  # the tenth, 54 s after the first
    assert lockout.retry_after("10.0.0.1") == LOCKOUT_SECONDS == 300
    assert lockout.retry_after("10.0.0.2") == 0


def test_wrong_tokens_spread_over_more_than_a_minute_do_not_lock():
    clock = Clock()
    lockout = Lockout(clock)
    fail(lockout, "10.0.0.1", 3 * FAILURES_ALLOWED, clock, every=7)  # ten span 63 s
    assert lockout.retry_after("10.0.0.1") == 0


def test_the_lockout_ends_after_five_minutes_and_the_count_starts_afresh():
    clock = Clock()
    lockout = Lockout(clock)
    fail(lockout, "10.0.0.1", FAILURES_ALLOWED, clock)
    clock.now += LOCKOUT_SECONDS - 1
    assert lockout.retry_after("10.0.0.1") == 1
    clock.now += 1
    assert lockout.retry_after("10.0.0.1") == 0
    lockout.failed("10.0.0.1")  # one more mistake is not a new lockout
    assert lockout.retry_after("10.0.0.1") == 0


def test_a_right_token_clears_the_count_of_wrong_ones():
    clock = Clock()
    lockout = Lockout(clock)
    fail(lockout, "10.0.0.1", FAILURES_ALLOWED - 1, clock)
    lockout.succeeded("10.0.0.1")
    fail(lockout, "10.0.0.1", FAILURES_ALLOWED - 1, clock)
    assert lockout.retry_after("10.0.0.1") == 0


def test_a_flood_of_addresses_keeps_memory_bounded(monkeypatch):
    clock = Clock()
    lockout = Lockout(clock)
    for number in range(access.ADDRESSES_TRACKED + 5_000):
        lockout.failed(f"addr-{number}")
    assert len(lockout._failures) == access.ADDRESSES_TRACKED
    # The oldest counts are the ones forgotten; the newest still count.
    fail(lockout, "addr-0", FAILURES_ALLOWED - 1, clock)
    assert lockout.retry_after("addr-0") == 0
    last = f"addr-{access.ADDRESSES_TRACKED + 4_999}"
    fail(lockout, last, FAILURES_ALLOWED - 1, clock)
    assert lockout.retry_after(last) == LOCKOUT_SECONDS

    monkeypatch.setattr(access, "ADDRESSES_TRACKED", 50)
    locked = Lockout(clock)
    for number in range(60):
        fail(locked, f"locked-{number}", FAILURES_ALLOWED, clock)
    clock.now += LOCKOUT_SECONDS + 1
    fail(locked, "one-more", FAILURES_ALLOWED, clock)
    assert set(locked._locked) == {"one-more"}  # expired lockouts are dropped


# --- sessions -------------------------------------------------------------------------------


def test_a_new_session_is_valid_for_seven_days():
    clock = Clock()
    gate = Gate(TOKEN, clock)
    session = gate.new_session()
    assert TOKEN not in session
    assert gate.session_valid(session)
    clock.now += SESSION_SECONDS - 5
    assert gate.session_valid(session)
    clock.now += 10
    assert not gate.session_valid(session)


def test_a_tampered_or_foreign_session_is_refused():
    gate = Gate(TOKEN)
    session = gate.new_session()
    expiry, nonce, signature = session.split(".")
    later = str(int(expiry) + 10**6)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for forged in (
        f"{later}.{nonce}.{signature}",  # a longer life
        f"{expiry}.{nonce}x.{signature}",
        f"{expiry}.{nonce}.{flipped}",
        f"{expiry}.{nonce}",
        signature,
        "",
        None,
    ):
        assert not gate.session_valid(forged), forged
    assert not Gate("another-token-0123456789").session_valid(session)


def test_only_the_token_itself_matches():
    gate = Gate(TOKEN)
    assert gate.token_matches(TOKEN)
    assert gate.token_matches(f" {TOKEN}\n")  # as pasted
    assert not gate.token_matches(TOKEN[:-1])
    assert not gate.token_matches(TOKEN + "x")
    assert not gate.token_matches("")


# --- the token file -------------------------------------------------------------------------


def test_a_token_is_generated_into_an_owner_only_file_beside_the_database(tmp_path):
    path = token_path(tmp_path / "data" / "glm_chat.db")
    assert path == tmp_path / "data" / "console_token"
    token, created = load_or_create_token(path)
    assert created and len(token) >= 16
    assert path.read_text("utf-8").strip() == token
    assert mode_of(path) == 0o600
    assert load_or_create_token(path) == (token, False)
    assert load_or_create_token(tmp_path / "other")[0] != token


def test_a_kept_token_readable_by_others_is_made_owner_only(tmp_path):
    path = tmp_path / "console_token"
    path.write_text(TOKEN + "\n", "utf-8")
    path.chmod(0o644)
    assert load_or_create_token(path) == (TOKEN, False)
    assert mode_of(path) == 0o600


@pytest.mark.parametrize("kept", ["", "short", "   fifteen-chars  "])
def test_a_token_too_short_in_the_file_is_replaced(tmp_path, kept):
    path = tmp_path / "console_token"
    path.write_text(kept, "utf-8")
    path.chmod(0o600)
    token, created = load_or_create_token(path)
    assert created and len(token) >= 16 and token != kept.strip()
    assert path.read_text("utf-8").strip() == token


def test_a_token_regenerated_into_a_file_readable_by_others_is_owner_only(tmp_path):
    path = tmp_path / "console_token"
    path.write_text("short", "utf-8")
    path.chmod(0o644)
    token, created = load_or_create_token(path)
    assert created and path.read_text("utf-8").strip() == token
    assert mode_of(path) == 0o600


# --- the same-origin rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "allowed"),
    [
        ("GET", {}, True),
        ("GET", {"origin": "http://evil.example"}, True),  # reading changes nothing
        ("HEAD", {"sec-fetch-site": "cross-site"}, True),
        ("POST", {"origin": ORIGIN}, True),
        ("PATCH", {"origin": ORIGIN + "/"}, True),
        ("post", {"origin": "http://evil.example"}, False),
        ("POST", {"origin": "http://127.0.0.1:9090"}, False),  # another port, another origin
        ("POST", {"origin": "https://127.0.0.1:8080"}, False),
        ("DELETE", {"origin": "http://evil.example", "sec-fetch-site": "same-origin"}, False),
        ("POST", {"sec-fetch-site": "same-origin"}, True),
        ("POST", {"origin": "null", "sec-fetch-site": "same-origin"}, True),
        ("POST", {"sec-fetch-site": "cross-site"}, False),
        ("POST", {"sec-fetch-site": "same-site"}, False),
        ("POST", {"sec-fetch-site": "none"}, False),
        ("POST", {"referer": ORIGIN + "/glm/chats/group:1"}, True),
        ("POST", {"referer": "http://evil.example/glm/"}, False),
        ("POST", {"origin": "null"}, False),
        ("PUT", {}, False),  # nothing at all says where it comes from
    ],
)
def test_only_requests_from_the_consoles_own_origin_may_change_something(method, headers, allowed):
    assert same_origin(method, headers, ORIGIN) is allowed


# --- the usage chart ------------------------------------------------------------------------


def test_bars_stack_each_series_on_the_ones_before_it():
    chart = stacked_bars(["周一", "周二"], [("group:1", [100, 0]), ("group:2", [50, 200])])
    assert not chart.empty
    first, second, alone = chart.bars
    assert (first.series, second.series, alone.series) == (0, 1, 1)
    assert first.x == second.x < alone.x
    assert second.y + second.height == pytest.approx(first.y)  # sits right on the first
    assert first.y + first.height == pytest.approx(chart.bottom)  # on the baseline
    assert first.height == pytest.approx(2 * second.height)  # 100 against 50
    assert alone.height == pytest.approx(4 * second.height)
    assert alone.y >= 10  # the tallest bar stays inside the plot
    assert "group:2" in second.title and "50" in second.title
    assert chart.legend == [(0, "group:1"), (1, "group:2")]
    assert [tick.text for tick in chart.y_ticks] == ["0", "50", "100", "150", "200"]


def test_a_chart_with_nothing_to_draw_says_it_is_empty():
    chart = stacked_bars(["a", "b", "c"], [("x", [0, 0, 0])])
    assert chart.empty and chart.bars == []
    assert stacked_bars([], []).empty


def test_many_days_keep_the_latest_label():
    labels = [f"d{number}" for number in range(30)]
    chart = stacked_bars(labels, [("x", [1] * 30)], max_labels=12)
    shown = [tick.text for tick in chart.x_labels]
    assert len(shown) <= 12 and shown[-1] == "d29"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (-3, 1), (1, 1), (3, 5), (7, 10), (11, 20), (20, 20), (250, 500), (1000, 1000)],
)
def test_the_scale_ends_at_a_round_number(value, ceiling):
    assert nice_ceiling(value) == ceiling


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (950, "950"), (12.5, "12.5"), (1200, "1.2k"), (25_000, "25k"), (3_400_000, "3.4M")],
)
def test_tick_labels_are_short(value, text):
    assert short_number(value) == text


# --- what a settings change may set ---------------------------------------------------------


def test_a_persona_too_long_is_refused_with_a_chinese_sentence():
    with pytest.raises(ChangeRefused) as refused:
        option_changes("group:1", SettingsPatch(persona="猫" * (PERSONA_LIMIT + 1)))
    assert CHINESE_SENTENCE.search(str(refused.value)), str(refused.value)
    assert str(PERSONA_LIMIT) in str(refused.value)
    assert option_changes("group:1", SettingsPatch(persona="猫" * PERSONA_LIMIT))


@pytest.mark.parametrize("cleared", ["", "   ", None])
def test_an_empty_persona_or_model_goes_back_to_the_default(cleared):
    patch = SettingsPatch(persona=cleared, model=cleared)
    assert option_changes("group:1", patch) == {"persona": None, "model": None}


@pytest.mark.parametrize(
    "name", ["glm 4", "<script>", "-glm", "glm\n4", "模型", "a" * 65, "glm;rm -rf"]
)
def test_a_bad_model_name_is_refused(name):
    with pytest.raises(ChangeRefused, match="模型名"):
        option_changes("group:1", SettingsPatch(model=name))


@pytest.mark.parametrize("name", ["glm-4-plus", "glm-4.5", "GLM-4-Flash", "org/model:tag_1"])
def test_a_model_name_is_kept_as_given(name):
    assert option_changes("group:1", SettingsPatch(model=f" {name} ")) == {"model": name}


def test_the_mode_is_only_for_groups():
    assert option_changes("group:1", SettingsPatch(mode="personal")) == {"personal": True}
    assert option_changes("group:1", SettingsPatch(mode="shared")) == {"personal": False}
    for chat in ("private:2", "console:playground"):
        with pytest.raises(ChangeRefused) as refused:
            option_changes(chat, SettingsPatch(mode="personal"))
        assert CHINESE_SENTENCE.search(str(refused.value))


def test_fields_not_given_are_not_changed():
    assert option_changes("group:1", SettingsPatch()) == {}
    assert option_changes("group:1", SettingsPatch(enabled=False)) == {"enabled": False}
    assert option_changes("private:2", SettingsPatch.model_validate({"search": True})) == {
        "web_search": True
    }
    assert option_changes("group:1", SettingsPatch(enabled=None, search=None, mode=None)) == {}


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValidationError):
        SettingsPatch.model_validate({"persona": "x", "api_key": "y"})
    with pytest.raises(ValidationError):
        SettingsPatch.model_validate({"mode": "everyone"})


def test_listening_and_chime_are_set_for_groups():
    patch = SettingsPatch.model_validate({"listen": False, "chime": 0})
    assert option_changes("group:1", patch) == {"listen": False, "chime": 0}
    patch = SettingsPatch.model_validate({"listen": True, "chime": 100})
    assert option_changes("group:1", patch) == {"listen": True, "chime": 100}
    assert option_changes("group:1", SettingsPatch(listen=None, chime=None)) == {}


@pytest.mark.parametrize("chime", [-1, 101, 5.5, 5.0, "5", "", True, False, [5], {"v": 5}])
def test_a_chime_that_is_not_a_whole_percent_is_refused(chime):
    with pytest.raises(ChangeRefused) as refused:
        option_changes("group:1", SettingsPatch.model_validate({"chime": chime}))
    assert str(refused.value) == "插话概率要是 0 到 100 的整数（百分比），例如 5。"


@pytest.mark.parametrize("listen", ["yes", "true", 1, 0, "on"])
def test_listen_takes_only_true_or_false(listen):
    with pytest.raises(ChangeRefused, match="旁听只能是"):
        option_changes("group:1", SettingsPatch.model_validate({"listen": listen}))


@pytest.mark.parametrize("body", [{"listen": True}, {"listen": False}, {"chime": 0}])
@pytest.mark.parametrize("chat", ["private:2", "console:playground"])
def test_listening_and_chime_are_only_for_groups(chat, body):
    with pytest.raises(ChangeRefused) as refused:
        option_changes(chat, SettingsPatch.model_validate(body))
    assert CHINESE_SENTENCE.search(str(refused.value)) and "群聊" in str(refused.value)


@pytest.mark.parametrize(
    ("chat", "known"),
    [
        ("group:123", True),
        ("private:456", True),
        ("console:playground", True),
        ("group:0", False),
        ("group:abc", False),
        ("group:1:2", False),  # a member's own conversation is reached through its group
        ("private:", False),
        ("console:other", False),
        ("group:1/../x", False),
    ],
)
def test_chat_keys(chat, known):
    assert known_chat(chat) is known


# --- the playground's stream ----------------------------------------------------------------


async def test_the_playground_stream_sends_every_piece_before_done(monkeypatch):
    async def answering(_services, message, *, on_text, delivered):
        for piece in ("回声", "：", message):  # the last pieces arrive with the end of the answer
            on_text(piece)
        usage = SimpleNamespace(prompt_tokens=3, completion_tokens=4)
        return SimpleNamespace(content=f"回声：{message}", usage=usage)

    monkeypatch.setattr(api, "ask_playground", answering)
    frames = [frame async for frame in api._stream_answer(None, "你好")]
    sent = [(frame.split("\n")[0], json.loads(frame.split("\n")[1][6:])) for frame in frames]
    assert sent == [
        ("event: start", {"conversation": "console:playground"}),
        ("event: delta", {"text": "回声"}),
        ("event: delta", {"text": "："}),
        ("event: delta", {"text": "你好"}),
        (
            "event: done",
            {"answer": "回声：你好", "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        ),
    ]


# --- the setting ----------------------------------------------------------------------------


def test_a_console_token_shorter_than_16_characters_stops_the_start_without_showing_it(
    monkeypatch, log_lines
):
    monkeypatch.setenv("GLM_CONSOLE_TOKEN", "tooshort-secret")  # 15 characters
    with pytest.raises(SystemExit) as stopped:
        load_config()
    assert stopped.value.code == 1
    assert [line.rstrip("\n") for line in log_lines] == [
        "GLM_CONSOLE_TOKEN: the value is not a secret of 16 or more characters, or nothing;"
        " write e.g. GLM_CONSOLE_TOKEN=<a long random string>"
    ]
    assert "tooshort" not in "".join(log_lines)


def test_a_console_token_of_16_characters_or_none_is_accepted(monkeypatch, log_lines):
    monkeypatch.setenv("GLM_CONSOLE_TOKEN", "sixteen-chars-ok")
    assert load_config().glm_console_token == "sixteen-chars-ok"
    monkeypatch.setenv("GLM_CONSOLE_TOKEN", "")
    assert load_config().glm_console_token is None
    monkeypatch.setenv("GLM_CONSOLE", "off")
    assert load_config().glm_console == "off"
    assert log_lines == []


# --- what went with a question, remarks, the summary -----------------------------------------

HEARD = f"{BACKGROUND_HEADER}\n张三(11): 今晚吃什么\n  第二行\n李四(12): 火锅"


@pytest.mark.parametrize(
    ("context", "parts", "title"),
    [
        (HEARD, (2, False), "提问时带着的群消息（2 条）"),
        (f"{HEARD}\n{QUOTE_MARK}李四(12): 火锅", (2, True), "提问时带着的群消息（2 条）和引用"),
        (f"{QUOTE_MARK}李四(12): 火锅", (0, True), "提问时引用的消息"),
        (f"{QUOTE_MARK}\n  我自己说过的话\n  第二行", (0, True), "提问时引用的消息"),
    ],
)
def test_a_turns_context_is_titled_by_what_it_carried(context, parts, title):
    assert context_parts(context) == parts
    assert context_title(context) == title


def test_a_remarks_context_is_what_the_bot_saw():
    assert context_title(HEARD, remark=True) == "插话时看到的群消息（2 条）"


def test_a_remark_is_a_turn_nobody_asked():
    assert is_remark(Turn(CHIME_CUE, "我也想吃火锅"))
    assert not is_remark(Turn(CHIME_CUE, "回答", Speaker("11", "张三")))  # a member typed it
    assert not is_remark(Turn("今晚吃什么", "火锅"))
    typed = StoredTurn("private:2", Turn(CHIME_CUE, "嗯？"), "glm-4", 1, 1, 1.0)
    assert not _turn(typed, "private:2")["remark"]
    made = StoredTurn("group:1", Turn(CHIME_CUE, "我也想吃"), "glm-4", 1, 1, 1.0)
    assert _turn(made, "group:1")["remark"]


def test_turns_up_to_the_summarys_last_are_marked_as_folded_in():
    summary = Summary("张三爱吃火锅", upto=2, upto_at=200.0, turns=2, updated_at=300.0)

    def shown(conversation: str, at: float) -> bool:
        stored = StoredTurn(conversation, Turn("问", "答"), "glm-4", 1, 1, at)
        return _turn(stored, "group:1", summary)["in_summary"]

    assert [shown("group:1", at) for at in (100.0, 200.0, 201.0)] == [True, True, False]
    assert not shown("group:1:42", 100.0)  # a member's own conversation has its own summary
    assert not _turn(StoredTurn("group:1", Turn("问", "答"), "m", 1, 1, 1.0), "group:1")[
        "in_summary"
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "5 分钟"),
        (3600, "1 小时"),
        (5400, "90 分钟"),
        (45, "45 秒"),
        (0, "0 秒"),
        (7.5, "7.5 秒"),
    ],
)
def test_durations_read_naturally(seconds, text):
    assert duration(seconds) == text


def chat_page(**changes):
    """The one-chat page rendered from data shaped as ``reads.chat`` returns it."""
    settings = {
        "persona": None,
        "model": None,
        "mode": "shared",
        "enabled": True,
        "search": False,
        "listen": True,
        "chime": 0,
        "default_persona": "默认人设",
        "default_model": "glm-4-flash",
        "group": True,
    }
    data = {
        "chat": "group:1",
        "kind": "群聊",
        "settings": settings | changes.pop("settings", {}),
        "summary": None,
        "listening": {"kept": 3, "limit": 20, "minutes": 60, "chime_gap": 300},
        "turns_kept": 0,
        "tokens_today": 0,
        "tokens_week": 0,
        "turns": [],
    } | changes
    return templates.get_template("chat.html").render(
        data=data, nav="chats", notice="", error="", prefix="/glm"
    )


def turn(**changes):
    return {
        "conversation": "group:1",
        "speaker": {"id": "11", "name": "张三"},
        "question": "今晚吃什么？",
        "answer": "火锅！",
        "context": "",
        "remark": False,
        "in_summary": False,
        "model": "glm-4-flash",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "at": 1_700_000_000.0,
    } | changes


def test_the_page_shows_the_summary_a_folded_context_and_a_remark_all_escaped():
    evil = "<img src=x onerror=alert(1)>"
    page = chat_page(
        summary={"text": f"张三说{evil}", "turns": 12, "updated_at": 1_700_000_000.0},
        turns=[
            turn(
                remark=True,
                speaker=None,
                question=CHIME_CUE,
                context=f"{BACKGROUND_HEADER}\n{evil}(11): <b>hi</b>",
            ),
            turn(
                context=f"{BACKGROUND_HEADER}\n李四(12): </pre><script>alert(2)</script>",
                in_summary=True,
            ),
        ],
    )
    assert "概括了更早的 12 轮，更新于 " in page and "张三说&lt;img src=x" in page
    assert page.count('<details class="context">') == 2
    assert "插话时看到的群消息（1 条）" in page and "提问时带着的群消息（1 条）" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page
    assert "<img" not in page and "<script>alert" not in page and "<b>" not in page
    assert "主动插话" in page and CHIME_CUE not in page  # the cue is never shown as a question
    assert "以下对话已概括进摘要" in page


def test_the_settings_form_has_listening_and_chime_for_groups_only():
    page = chat_page(settings={"chime": 5})
    assert 'id="listen" name="listen" checked' in page and "旁听群聊" in page
    assert 'type="number" id="chime" name="chime" min="0" max="100"' in page
    assert 'value="5"' in page and "现在记着 <strong>3</strong> 条" in page
    assert "每 5 分钟最多一次" in page and "1 小时内" in page
    private = chat_page(chat="private:2", settings={"group": False}, listening=None)
    assert 'name="listen"' not in private and 'name="chime"' not in private


def test_with_background_off_for_the_bot_the_box_is_disabled_and_says_why():
    page = chat_page(
        settings={"chime": 5}, listening={"kept": 0, "limit": 0, "minutes": 60, "chime_gap": 300}
    )
    assert 'id="listen" name="listen" disabled' in page
    assert "GLM_BACKGROUND_MESSAGES</code> 设成了 0" in page
    assert "旁听关着，机器人听不到群聊，不会插话。" in page
