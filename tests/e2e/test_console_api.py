"""The web console against ``python bot.py``, as an operator's browser or script meets it: who
gets in, what the JSON API shows and changes, and how its changes take their turn in a chat's
queue with the questions from QQ.

One bot serves the module (each test uses its own group); the restart and the bots with other
settings are their own processes. Wrong tokens come from other loopback addresses
(127.0.0.x), so the lockout they cause never locks the tests' own address out.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest

from plugins.nonebot_plugin_glm_chat.chat.context import BACKGROUND_HEADER
from tests.e2e.conftest import ACCESS_TOKEN, KEY_ID, KEY_SECRET, SELF_ID, SUPERUSER
from tests.e2e.test_startup import refused, told
from tests.support.bot_process import RunningBot
from tests.support.fake_glm import FakeGLM, Fault
from tests.support.onebot_client import OneBotClient, Sent, text

EVIL = {"Origin": "http://evil.example"}
OWN_TOKEN = "operator-chosen-console-token"
API_READS = [
    "/glm/api/overview",
    "/glm/api/chats",
    "/glm/api/chats/group:1",
    "/glm/api/usage?days=7",
    "/glm/api/calls?limit=5",
]
PAGES = [
    "/glm/",
    "/glm/chats",
    "/glm/chats/group:1",
    "/glm/usage",
    "/glm/usage.csv",
    "/glm/playground",
    "/glm/calls",
]
SHORT_TOKEN_LINE = (
    "GLM_CONSOLE_TOKEN: the value is not a secret of 16 or more characters, or nothing;"
    " write e.g. GLM_CONSOLE_TOKEN=<a long random string>"
)
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def settings(base_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """What ``python bot.py`` runs with here: the fake GLM, a database in ``folder``."""
    return {
        "GLM_API_KEY": f"{KEY_ID}.{KEY_SECRET}",
        "GLM_BASE_URL": base_url,
        "GLM_DB_PATH": str(folder / "data" / "glm_chat.db"),
        "ONEBOT_ACCESS_TOKEN": ACCESS_TOKEN,
        "NICKNAME": '["小智"]',
        "LOG_LEVEL": "INFO",
        "SUPERUSERS": f'["{SUPERUSER}"]',
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def running(env: dict[str, str], log: Path) -> RunningBot:
    return RunningBot(env, log, self_id=SELF_ID, token=ACCESS_TOKEN)


def base_of(bot: RunningBot) -> str:
    return f"http://127.0.0.1:{bot.process.port}"


class Console:
    """The module's bot: its QQ client, and HTTP clients that keep every answer they get."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.answers: list[httpx.Response] = []
        self.bot = running(env, folder / "bot.log")
        self.qq: OneBotClient | None = None

    async def start(self) -> None:
        self.bot = running(self.env, self.folder / "bot.log")
        self.qq = await self.bot.__aenter__()

    async def stop(self) -> None:
        await self.bot.__aexit__(None, None, None)

    @property
    def base(self) -> str:
        return base_of(self.bot)

    @property
    def token(self) -> str:
        return (self.folder / "data" / "console_token").read_text("utf-8").strip()

    def log(self) -> str:
        return self.bot.process.log()

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.answers.append(response)

    def client(self, *, token: str | None = None, source: str | None = None) -> httpx.AsyncClient:
        """A client of the console (``source``: the loopback address it comes from)."""
        transport = httpx.AsyncHTTPTransport(local_address=source) if source else None
        return httpx.AsyncClient(
            base_url=self.base,
            headers=bearer(token) if token else None,
            transport=transport,
            timeout=30,
            event_hooks={"response": [self._keep]},
        )

    def script(self) -> httpx.AsyncClient:
        """A script with the right Bearer token."""
        return self.client(token=self.token)

    @asynccontextmanager
    async def browser(self) -> AsyncIterator[httpx.AsyncClient]:
        """A browser logged in by the start-up log's link: it has the session cookie."""
        async with self.client() as client:
            answer = await client.get("/glm/login", params={"token": self.token})
            assert answer.status_code == 303, answer.text
            yield client

    async def ask(self, group: int, question: str, user: int = 111, nickname: str = "Alice"):
        """``@bot question`` in ``group``; the bot's answer, once its turn is stored (which
        comes right after QQ took the answer)."""
        assert self.qq is not None
        asked = await self.qq.mention(group, user, question, nickname=nickname)
        answer = await self.qq.reply_to(asked)
        deadline = time.monotonic() + 10
        async with self.script() as script:
            while answer.text not in await stored_answers(script, f"group:{group}"):
                assert time.monotonic() < deadline, f"the answer in group {group} was not stored"
                await asyncio.sleep(0.02)
        return answer


@pytest.fixture(scope="module")
async def console(glm, tmp_path_factory) -> AsyncIterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    served = Console(settings(glm[1], folder), folder)
    await served.start()
    yield served
    await served.stop()


async def chat_of(client: httpx.AsyncClient, chat: str) -> dict:
    answer = await client.get(f"/glm/api/chats/{chat}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def stored_answers(client: httpx.AsyncClient, chat: str) -> list[str]:
    return [turn["answer"] for turn in (await chat_of(client, chat))["turns"]]


async def answered_while_held(
    console: Console, fake: FakeGLM, group: int, change
) -> tuple[Sent, httpx.Response, float]:
    """Hold an answer in ``group``, start ``change`` (a console request) meanwhile, check that it
    waits for the answer, then let both finish: the answer, the change's response, when the
    change returned."""
    assert console.qq is not None
    fake.push(Fault("hold", body="慢慢写完的回答"))
    held = await console.qq.mention(group, 111, "慢问题", nickname="Alice")
    await fake.wait_holding()
    changing = asyncio.ensure_future(change)
    finished: list[float] = []
    changing.add_done_callback(lambda _: finished.append(time.monotonic()))
    done, _ = await asyncio.wait({changing}, timeout=0.5)
    assert not done, "the console's change did not wait for the answer being written"
    fake.release()
    answer = await console.qq.reply_to(held)
    return answer, await changing, finished[0]


def secured(answer: httpx.Response) -> bool:
    headers = answer.headers
    csp = headers.get("content-security-policy", "")
    return (
        "default-src 'none'" in csp
        and "frame-ancestors 'none'" in csp
        and all(headers.get(name) == value for name, value in SECURITY_HEADERS.items())
    )


def events(stream: str) -> list[tuple[str, dict]]:
    """``(event, data)`` of each server-sent event."""
    found = []
    for frame in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
    return found


# --- getting in ---------------------------------------------------------------------------


async def test_without_a_session_the_api_answers_401_and_pages_lead_to_the_login(console):
    async with console.client() as anyone:
        reads = [await anyone.get(path) for path in API_READS]
        writes = [
            await anyone.patch("/glm/api/chats/group:1", json={"persona": "x"}),
            await anyone.post("/glm/api/chats/group:1/reset"),
            await anyone.post("/glm/api/playground", json={"message": "你好"}),
        ]
        pages = [await anyone.get(path) for path in PAGES]
        form = await anyone.get("/glm/login")
    assert [answer.status_code for answer in reads + writes] == [401] * 8
    assert [(answer.status_code, answer.headers["location"]) for answer in pages] == [
        (303, "/glm/login")
    ] * len(PAGES)
    assert form.status_code == 200
    assert 'type="password"' in form.text and "访问令牌" in form.text and "登录" in form.text


async def test_the_right_bearer_token_opens_the_api_and_a_wrong_one_does_not(console):
    async with console.script() as script:
        assert [(await script.get(path)).status_code for path in API_READS] == [200] * 5
    async with console.client(token="a-wrong-token-0000000", source="127.0.0.3") as guesser:
        wrong = await guesser.get("/glm/api/overview")
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


async def test_ten_wrong_tokens_in_a_minute_lock_that_address_out_even_for_the_right_one(console):
    async with console.client(source="127.0.0.2") as guesser:
        guesses = [
            await guesser.get("/glm/api/overview", headers=bearer(f"guess-{number:016}"))
            for number in range(10)
        ]
        locked = await guesser.get("/glm/api/overview", headers=bearer(console.token))
        login = await guesser.get("/glm/login", params={"token": console.token})
    assert [answer.status_code for answer in guesses] == [401] * 10
    assert locked.status_code == 429 and 250 < int(locked.headers["retry-after"]) <= 300
    assert login.status_code == 429 and "错误次数太多" in login.text
    assert "set-cookie" not in login.headers
    async with console.script() as elsewhere:  # only that address is locked out
        assert (await elsewhere.get("/glm/api/overview")).status_code == 200


async def test_the_login_link_sets_a_strict_http_only_session_cookie_for_the_console(console):
    async with console.client() as browser:
        answer = await browser.get("/glm/login", params={"token": console.token})
        overview = await browser.get("/glm/")
    assert answer.status_code == 303 and answer.headers["location"] == "/glm/"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/glm"} <= attributes
    assert "secure" not in attributes  # plain http on 127.0.0.1: the browser would drop it
    assert console.token not in cookie
    assert overview.status_code == 200 and "概览" in overview.text


async def test_the_login_form_logs_in_and_says_when_the_token_is_wrong(console):
    async with console.client(source="127.0.0.4") as browser:
        own = {"Origin": console.base}
        wrong = await browser.post("/glm/login", data={"token": "not-it-at-all-000"}, headers=own)
        right = await browser.post("/glm/login", data={"token": console.token}, headers=own)
        chats = await browser.get("/glm/chats")
    assert wrong.status_code == 401 and "访问令牌不对" in wrong.text
    assert right.status_code == 303 and "set-cookie" in right.headers
    assert chats.status_code == 200 and "会话" in chats.text


async def test_the_generated_token_is_kept_owner_only_beside_the_database_and_linked_in_the_log(
    console,
):
    kept = console.folder / "data" / "console_token"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert len(console.token) >= 16
    assert f"glm-chat console: {console.base}/glm/login?token={console.token}" in console.log()


def test_a_short_console_token_stops_the_start_without_showing_it(bot_env, log_path):
    output = "\n".join(refused({**bot_env, "GLM_CONSOLE_TOKEN": "short-secret-15"}, log_path))
    assert told(output.splitlines(), SHORT_TOKEN_LINE), output
    assert "short-secret" not in output


# --- cross-origin -------------------------------------------------------------------------


async def test_a_change_with_the_session_cookie_from_another_origin_is_refused(console, fake):
    await console.ask(21, "记住：21")
    async with console.browser() as browser:
        refused = [
            await browser.patch(
                "/glm/api/chats/group:21", json={"persona": "坏人设"}, headers=EVIL
            ),
            await browser.post("/glm/api/chats/group:21/reset", headers=EVIL),
            await browser.post(
                "/glm/api/chats/group:21/reset", headers={"Sec-Fetch-Site": "cross-site"}
            ),
            await browser.post("/glm/api/chats/group:21/reset"),  # nothing says where from
            await browser.post("/glm/chats/group:21/reset", headers=EVIL),  # the page's form
            await browser.post(
                "/glm/chats/group:21/settings", data={"persona": "坏人设"}, headers=EVIL
            ),
        ]
        unchanged = await chat_of(browser, "group:21")
        own = {"Origin": console.base}
        changed = await browser.patch(
            "/glm/api/chats/group:21", json={"persona": "好"}, headers=own
        )
        reset = await browser.post(
            "/glm/api/chats/group:21/reset", headers={"Sec-Fetch-Site": "same-origin"}
        )
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert unchanged["settings"]["persona"] is None and unchanged["turns_kept"] == 1
    assert changed.status_code == 200 and changed.json()["persona"] == "好"
    assert reset.status_code == 200 and reset.json() == {"removed": 1}


async def test_wrong_tokens_another_site_makes_the_browser_send_lock_nobody_out(console):
    cross = {"Sec-Fetch-Site": "cross-site"}
    async with console.client(source="127.0.0.5") as victim:
        for number in range(12):  # <img src=".../glm/login?token=x"> on some page
            await victim.get("/glm/login", params={"token": f"x{number}"}, headers=cross)
        login = await victim.get("/glm/login", params={"token": console.token})
    assert login.status_code == 303


async def test_a_crafted_session_cookie_is_refused_not_an_error(console):
    async with console.client() as client:
        crafted = {"Cookie": "glm_console=1.a.é".encode()}  # not ASCII
        page_ = await client.get("/glm/", headers=crafted)
        api_ = await client.get("/glm/api/overview", headers=crafted)
    assert (page_.status_code, api_.status_code) == (303, 401)


async def test_the_settings_form_saves_a_switch_when_glm_model_set_a_name_it_would_refuse(
    console, fake
):
    """``/glm model`` takes any name; the page must still save the rest of the chat's settings,
    and a persona's line breaks arrive as the browser's CRLF without growing it."""
    async with console.browser() as browser:
        own = {"Origin": console.base}
        await browser.patch(
            "/glm/api/chats/group:24", json={"persona": "第一行\n第二行"}, headers=own
        )
        assert console.qq is not None
        command = [{"type": "text", "data": {"text": "/glm model 模型+实验"}}]
        await console.qq.reply_to(await console.qq.group_message(24, SUPERUSER, command))
        saved = await browser.post(
            "/glm/chats/group:24/settings",
            data={
                "persona": "第一行\r\n第二行",
                "model": "模型+实验",
                "search": "on",
                "enabled": "on",
            },
            headers=own,
        )
        settings = (await chat_of(browser, "group:24"))["settings"]
    assert saved.status_code == 303, saved.text
    # An unticked box is a setting too: tools off.
    assert (settings["search"], settings["tools"], settings["model"], settings["persona"]) == (
        True,
        False,
        "模型+实验",
        "第一行\n第二行",
    )


# --- headers and secrets ------------------------------------------------------------------


async def test_every_page_and_api_answer_carries_the_security_headers(console):
    async with console.browser() as browser:
        pages = [await browser.get(path) for path in [*PAGES, "/glm/static/console.css"]]
        missing = await browser.get("/glm/chats/group:abc")
        cross = await browser.post("/glm/api/chats/group:1/reset", headers=EVIL)
    async with console.script() as script:
        api = [await script.get(path) for path in API_READS]
        unknown = await script.get("/glm/api/chats/nothing")
    async with console.client() as anyone:
        login = await anyone.get("/glm/login")
        anonymous = [await anyone.get("/glm/api/overview"), await anyone.get("/glm/")]
    assert [answer.status_code for answer in pages + api] == [200] * (len(PAGES) + 1 + 5)
    errors = [missing, cross, unknown, *anonymous]
    assert [answer.status_code for answer in errors] == [404, 403, 404, 401, 303]
    for answer in [*pages, *api, login, *errors]:
        assert secured(answer), (answer.url, dict(answer.headers))
    assert all(answer.headers["cache-control"] == "no-store" for answer in [*api, login])


async def test_a_request_refused_as_malformed_carries_the_security_headers_too(console):
    async with console.script() as script:
        answers = [
            await script.patch("/glm/api/chats/group:1", json={"bogus": 1}),
            await script.get("/glm/api/usage?days=0"),
        ]
    assert [answer.status_code for answer in answers] == [422, 422]
    for answer in answers:
        assert secured(answer), (answer.url, dict(answer.headers))


# --- the JSON API -------------------------------------------------------------------------


async def test_the_overview_shows_the_account_todays_calls_and_the_key_by_its_id(console, fake):
    async with console.script() as script:
        before = (await script.get("/glm/api/overview")).json()
        await console.ask(31, "你好")
        after = (await script.get("/glm/api/overview")).json()
    async with console.browser() as browser:
        page = (await browser.get("/glm/")).text
    assert [bot["self_id"] for bot in after["bots"]] == [str(SELF_ID)]
    assert after["calls_today"]["calls"] == before["calls_today"]["calls"] + 1
    assert after["calls_today"]["succeeded"] == before["calls_today"]["succeeded"] + 1
    assert after["tokens_today"] > before["tokens_today"]
    assert [(key["id"], key["resting"]) for key in after["keys"]] == [(KEY_ID, False)]
    assert str(SELF_ID) in page and KEY_ID in page


async def test_a_group_is_listed_with_its_turns_tokens_and_speakers(console, fake):
    first = await console.ask(41, "第一问", user=111, nickname="Alice")
    second = await console.ask(41, "第二问", user=222, nickname="Bob")
    async with console.script() as script:
        listed = (await script.get("/glm/api/chats", params={"q": "group:41"})).json()
        detail = await chat_of(script, "group:41")
    async with console.browser() as browser:
        page = (await browser.get("/glm/chats/group:41")).text
    entry = next(chat for chat in listed["chats"] if chat["chat"] == "group:41")
    assert (entry["kind"], entry["turns"]) == ("群聊", 2)
    spent = sum(turn["prompt_tokens"] + turn["completion_tokens"] for turn in detail["turns"])
    assert spent > 0 and entry["tokens_today"] == detail["tokens_today"] == spent
    assert [(t["speaker"], t["question"], t["answer"]) for t in detail["turns"]] == [
        ({"id": "222", "name": "Bob"}, "第二问", second.text),  # newest first
        ({"id": "111", "name": "Alice"}, "第一问", first.text),
    ]
    assert detail["turns_kept"] == 2
    assert all(text in page for text in ("Alice", "Bob", "第一问", "第二问"))


async def test_markup_from_qq_and_the_model_shows_as_text(console, fake):
    nickname, question = "<img src=x onerror=alert(1)>", "<script>alert(2)</script>"
    await console.ask(43, question, nickname=nickname)  # the fake model echoes it back
    async with console.browser() as browser:
        pages = [(await browser.get(path)).text for path in ("/glm/chats/group:43", "/glm/calls")]
    assert "&lt;img src=x onerror=alert" in pages[0]  # the name as cleaned for the model
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pages[0]
    assert not any("<img src=x" in page or "<script>alert" in page for page in pages)


async def test_a_persona_set_in_the_console_goes_with_the_next_question(console, fake):
    persona = "你是一只猫，句尾加喵。"
    async with console.script() as script:
        changed = await script.patch("/glm/api/chats/group:51", json={"persona": persona})
        await console.ask(51, "你是谁？")
        cleared = await script.patch("/glm/api/chats/group:51", json={"persona": ""})
        await console.ask(51, "现在呢？")
    assert changed.status_code == 200 and changed.json()["persona"] == persona
    assert cleared.status_code == 200 and cleared.json()["persona"] is None
    with_persona, without = fake.completions()
    assert with_persona.messages[0]["role"] == "system"
    assert with_persona.messages[0]["content"].startswith(persona)
    assert "猫" not in without.messages[0]["content"]


async def test_a_bad_change_is_refused_with_422_and_changes_nothing(console):
    async with console.script() as script:
        answers = [
            await script.patch("/glm/api/chats/group:52", json=body)
            for body in (
                {"persona": "好", "api_key": "x"},
                {"mode": "everyone"},
                {"model": "glm 4"},
                {"persona": "长" * 2001},
            )
        ]
        private = await script.patch("/glm/api/chats/private:52", json={"mode": "personal"})
        settings_now = (await chat_of(script, "group:52"))["settings"]
    assert [answer.status_code for answer in [*answers, private]] == [422] * 5
    assert "模型名" in answers[2].json()["detail"] and "人设太长" in answers[3].json()["detail"]
    assert "群聊" in private.json()["detail"]
    assert (settings_now["persona"], settings_now["model"], settings_now["mode"]) == (
        None,
        None,
        "shared",
    )


async def test_a_reset_forgets_the_chat_and_the_next_question_starts_afresh(console, fake):
    await console.ask(61, "暗号是42")
    await console.ask(61, "记住了吗？")
    async with console.script() as script:
        reset = await script.post("/glm/api/chats/group:61/reset")
        await console.ask(61, "暗号是多少？")
        detail = await chat_of(script, "group:61")
    assert reset.status_code == 200 and reset.json() == {"removed": 2}
    assert [message["role"] for message in fake.completions()[-1].messages] == ["system", "user"]
    assert detail["turns_kept"] == 1


async def test_usage_has_the_groups_tokens_today_and_the_csv_its_row(console, fake):
    await console.ask(71, "用量" * 300)  # the chat that spent most: drawn by its name
    today = date.today().isoformat()
    async with console.script() as script:
        spent = (await chat_of(script, "group:71"))["tokens_today"]
        usage = (await script.get("/glm/api/usage", params={"days": 7})).json()
    async with console.browser() as browser:
        csv = await browser.get("/glm/usage.csv")
        page = await browser.get("/glm/usage")
    assert len(usage["days"]) == 7 and usage["days"][-1] == today
    series = next(series for series in usage["series"] if series["chat"] == "group:71")
    assert series["tokens"] == [0] * 6 + [spent] and usage["total"][-1] >= spent > 0
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"].startswith("attachment")
    rows = csv.text.lstrip("\ufeff").splitlines()
    assert rows[0] == "day,chat,tokens,turns"
    assert f"{today},group:71,{spent},1" in rows
    assert "<svg" in page.text and "group:71" in page.text


async def test_recent_calls_are_listed_as_the_log_line_has_them(console, fake):
    await console.ask(81, "调用记录")
    async with console.script() as script:
        calls = (await script.get("/glm/api/calls", params={"limit": 5})).json()
    assert 1 <= len(calls) <= 5
    newest = calls[0]
    assert (newest["conversation"], newest["ok"], newest["key"]) == ("group:81", True, KEY_ID)
    assert newest["line"].startswith("glm call conv=group:81 ")
    assert newest["line"] in console.log()


async def test_the_playground_answers_and_keeps_its_conversation(console, fake):
    async with console.script() as script:
        answer = await script.post("/glm/api/playground", json={"message": "试聊一下"})
        empty = await script.post("/glm/api/playground", json={"message": "  "})
        stored = await chat_of(script, "console:playground")
    assert answer.status_code == 200, answer.text
    said = answer.json()
    assert said["answer"].startswith("回声#") and said["answer"].endswith("：试聊一下")
    assert said["usage"]["completion_tokens"] > 0
    assert fake.completions()[-1].messages[-1]["content"] == "试聊一下"
    assert (stored["kind"], stored["turns"][0]["question"]) == ("控制台", "试聊一下")
    assert stored["turns"][0]["answer"] == said["answer"]
    assert empty.status_code == 422 and empty.json()["detail"] == "消息是空的。"


async def test_the_playground_streams_delta_events_then_done(console, fake):
    message = "请把这句话慢慢地、一段一段地流式发回来。"
    async with (
        console.script() as script,
        script.stream(
            "POST",
            "/glm/api/playground",
            json={"message": message},
            headers={"Accept": "text/event-stream"},
        ) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        frames = events((await answer.aread()).decode("utf-8"))
    async with console.script() as script:
        stored = await chat_of(script, "console:playground")
    names = [name for name, _ in frames]
    assert names[0] == "start" and set(names[1:-1]) == {"delta"} and names[-1] == "done"
    whole = frames[-1][1]["answer"]
    assert whole.endswith(message)
    assert "".join(data["text"] for _, data in frames[1:-1]) == whole  # every piece, in order
    assert (stored["turns"][0]["question"], stored["turns"][0]["answer"]) == (message, whole)


async def test_a_playground_answer_the_browser_left_before_is_not_kept(console, fake):
    message = "问完就关掉页面"
    fake.push(Fault("hold", body="没人看到的回答"))
    # A client that does not read whole bodies as they arrive (the console's clients do).
    async with httpx.AsyncClient(base_url=console.base, headers=bearer(console.token)) as script:
        calls_before = len((await script.get("/glm/api/calls")).json())
        async with script.stream(
            "POST",
            "/glm/api/playground",
            json={"message": message},
            headers={"Accept": "text/event-stream"},
        ):
            await fake.wait_holding()
        fake.release()  # the answer is written after the browser went away
        deadline = time.monotonic() + 10
        while len((await script.get("/glm/api/calls")).json()) == calls_before:
            assert time.monotonic() < deadline, "the held call never ended"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        stored = await chat_of(script, "console:playground")
    assert message not in [turn["question"] for turn in stored["turns"]]


async def test_an_unknown_chat_key_is_not_found(console):
    async with console.browser() as browser:
        pages = [await browser.get(f"/glm/chats/{chat}") for chat in ("group:abc", "nothing")]
    async with console.script() as script:
        api = [
            await script.get("/glm/api/chats/group:0"),
            await script.patch("/glm/api/chats/group:x", json={"persona": "x"}),
            await script.post("/glm/api/chats/private:-1/reset"),
        ]
    assert [answer.status_code for answer in pages + api] == [404] * 5


# --- changes in a chat's queue ------------------------------------------------------------


async def test_a_console_reset_during_an_answer_runs_right_after_it(console, fake):
    await console.ask(91, "第一问")
    async with console.script() as script:
        answer, reset, reset_at = await answered_while_held(
            console, fake, 91, script.post("/glm/api/chats/group:91/reset")
        )
        detail = await chat_of(script, "group:91")
    assert answer.text == "慢慢写完的回答" and answer.received_at < reset_at
    assert reset.json() == {"removed": 2}  # the answer's turn was stored first, then forgotten
    assert (detail["turns_kept"], detail["turns"]) == (0, [])


async def test_a_settings_change_during_an_answer_applies_to_the_next_question(console, fake):
    async with console.script() as script:
        _, changed, _ = await answered_while_held(
            console, fake, 92, script.patch("/glm/api/chats/group:92", json={"persona": "海盗"})
        )
    await console.ask(92, "第二问")
    held, after = fake.completions()
    assert changed.json()["persona"] == "海盗"
    assert "海盗" not in held.messages[0]["content"]
    assert after.messages[0]["content"].startswith("海盗")
    assert after.messages[-3]["content"].endswith("慢问题")  # the held turn, then the new one


# --- group awareness: reading along, remarks, the summary -----------------------------------


async def chatter(console: Console, group: int, user: int, line: str, nickname: str) -> None:
    """A group message not addressed to the bot: background, while the group is read along."""
    assert console.qq is not None
    await console.qq.group_message(group, user, [text(line)], nickname=nickname)


async def kept_until(script: httpx.AsyncClient, chat: str, count: int) -> dict:
    """The chat once it keeps ``count`` messages of background (they are written shortly)."""
    deadline = time.monotonic() + 10
    while True:
        detail = await chat_of(script, chat)
        if detail["listening"]["kept"] == count:
            return detail
        assert time.monotonic() < deadline, f"{chat} keeps {detail['listening']}, not {count}"
        await asyncio.sleep(0.05)


async def command(console: Console, group: int, line: str) -> str:
    """``line`` sent by a superuser in ``group``; the bot's reply."""
    assert console.qq is not None
    sent = await console.qq.group_message(group, SUPERUSER, [text(line)])
    return (await console.qq.reply_to(sent)).text


def background_rows(console: Console, chat: str) -> int:
    """The chat's background rows in the database file itself (read-only, beside the bot)."""
    path = console.folder / "data" / "glm_chat.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM background WHERE chat = ?", (chat,)).fetchone()[0]


async def test_listening_and_chime_are_set_through_the_api_and_the_bot_uses_them(console):
    async with console.script() as script:
        before = (await chat_of(script, "group:101"))["settings"]
        changed = await script.patch(
            "/glm/api/chats/group:101", json={"listen": False, "chime": 30}
        )
        detail = await chat_of(script, "group:101")
        listed = (await script.get("/glm/api/chats", params={"q": "group:101"})).json()
    entry = next(chat for chat in listed["chats"] if chat["chat"] == "group:101")
    assert (before["listen"], before["chime"]) == (True, 0)  # the defaults
    assert changed.status_code == 200, changed.text
    assert (changed.json()["listen"], changed.json()["chime"]) == (False, 30)
    assert (detail["settings"]["listen"], detail["settings"]["chime"]) == (False, 30)
    assert (entry["settings"]["listen"], entry["settings"]["chime"]) == (False, 30)
    assert detail["listening"] == {"kept": 0, "limit": 20, "minutes": 60, "chime_gap": 300}
    assert "旁听：关闭" in await command(console, 101, "/glm status")
    assert "插话概率现在是 30%" in await command(console, 101, "/glm chime")
    async with console.browser() as browser:
        chats = (await browser.get("/glm/chats", params={"q": "group:101"})).text
    assert "不旁听" in chats and "插话 30%" in chats


async def test_a_bad_listen_or_chime_is_refused_in_chinese_and_changes_nothing(console):
    bad = [
        {"chime": 101},
        {"chime": -1},
        {"chime": 5.5},
        {"chime": "5"},
        {"chime": True},
        {"chime": [5]},
        {"listen": "yes"},
        {"listen": 0},
        {"chime": 50, "listen": "off"},  # one bad value: the good one is not saved either
    ]
    async with console.script() as script:
        answers = [await script.patch("/glm/api/chats/group:102", json=body) for body in bad]
        elsewhere = [
            await script.patch(f"/glm/api/chats/{chat}", json=body)
            for chat in ("private:102", "console:playground")
            for body in ({"listen": False}, {"chime": 5})
        ]
        detail = await chat_of(script, "group:102")
        private = await chat_of(script, "private:102")
    assert [answer.status_code for answer in answers + elsewhere] == [422] * 13
    details = [answer.json()["detail"] for answer in answers]
    assert details[:6] == ["插话概率要是 0 到 100 的整数（百分比），例如 5。"] * 6
    assert details[6:] == ["旁听只能是 true（开启）或 false（关闭）。"] * 3
    assert [answer.json()["detail"] for answer in elsewhere] == [
        "只有群聊可以开关旁听。",
        "只有群聊可以设置插话概率。",
    ] * 2
    assert (detail["settings"]["listen"], detail["settings"]["chime"]) == (True, 0)
    assert private["listening"] is None and private["settings"]["group"] is False


async def test_the_settings_form_sets_listening_and_chime_and_refuses_a_bad_percent(console):
    async with console.browser() as browser:
        own = {"Origin": console.base}
        form = {"enabled": "on", "mode": "shared", "persona": "", "model": ""}
        saved = await browser.post(
            "/glm/chats/group:106/settings", data={**form, "chime": "15"}, headers=own
        )
        after_save = (await chat_of(browser, "group:106"))["settings"]
        refused = await browser.post(
            "/glm/chats/group:106/settings",
            data={**form, "listen": "on", "chime": "十五"},
            headers=own,
        )
        page = (await browser.get("/glm/chats/group:106")).text
    assert saved.status_code == 303, saved.text
    assert (after_save["listen"], after_save["chime"]) == (False, 15)  # the box was unchecked
    assert refused.status_code == 422
    assert "插话概率要是 0 到 100 的整数" in refused.text
    assert 'id="listen" name="listen" aria-describedby' in page  # still unchecked
    assert 'value="15"' in page and "旁听关着，机器人听不到群聊，不会插话。" in page


async def test_turning_listening_off_in_the_console_forgets_what_the_group_said(console, fake):
    await chatter(console, 103, 301, "今晚吃火锅吧", "Carol")
    await chatter(console, 103, 302, "我带毛肚", "Dave")
    async with console.script() as script:
        kept = await kept_until(script, "group:103", 2)
        status_on = await command(console, 103, "/glm status")
        rows_before = background_rows(console, "group:103")
        off = await script.patch("/glm/api/chats/group:103", json={"listen": False})
        status_off = await command(console, 103, "/glm status")
        rows_after = background_rows(console, "group:103")
        on = await script.patch("/glm/api/chats/group:103", json={"listen": True})
        detail = await chat_of(script, "group:103")
    await console.ask(103, "刚才大家说了什么？")
    asked = fake.completions()[-1].messages[-1]["content"]
    assert kept["settings"]["listen"] is True
    assert "旁听：开启，记着最近 2 条群消息" in status_on and rows_before == 2
    assert off.status_code == on.status_code == 200
    assert "旁听：关闭" in status_off and rows_after == 0
    assert detail["listening"]["kept"] == 0
    assert BACKGROUND_HEADER not in asked and "火锅" not in asked  # forgotten, not just hidden


async def test_listening_turned_off_during_an_answer_goes_after_it_and_forgets_its_context(
    console, fake
):
    await chatter(console, 104, 301, "明天十点开会", "Carol")
    async with console.script() as script:
        await kept_until(script, "group:104", 1)
        answer, off, _ = await answered_while_held(
            console, fake, 104, script.patch("/glm/api/chats/group:104", json={"listen": False})
        )
        detail = await chat_of(script, "group:104")
    held = fake.completions()[-1].messages[-1]["content"]
    assert held.startswith(BACKGROUND_HEADER) and "Carol(301): 明天十点开会" in held
    assert off.status_code == 200 and off.json()["listen"] is False
    # The answer was stored first, then listening went off: what the group said is deleted,
    # the copy its turn carried as context included.
    (turn,) = detail["turns"]
    assert (turn["question"], turn["answer"], turn["context"]) == ("慢问题", answer.text, "")
    assert detail["listening"]["kept"] == 0


async def test_background_made_of_markup_shows_as_text_in_a_folded_context(console, fake):
    nickname, line = "<img src=x onerror=alert(5)>", "<script>alert(6)</script>今晚开会"
    await chatter(console, 105, 303, line, nickname)
    async with console.script() as script:
        await kept_until(script, "group:105", 1)
    await console.ask(105, "刚才说了什么？")
    async with console.script() as script:
        (turn,) = (await chat_of(script, "group:105"))["turns"]
    async with console.browser() as browser:
        page = (await browser.get("/glm/chats/group:105")).text
    assert turn["context"].startswith(BACKGROUND_HEADER) and line in turn["context"]
    assert '<details class="context">' in page and "提问时带着的群消息（1 条）" in page
    assert "&lt;script&gt;alert(6)&lt;/script&gt;今晚开会" in page
    assert "&lt;img src=x onerror=alert" in page
    assert "<script>alert" not in page and "<img src=x" not in page


async def test_a_long_conversation_shows_its_summary_and_the_turns_it_covers(glm, fake, tmp_path):
    env = settings(glm[1], tmp_path, GLM_HISTORY_TURNS="2", GLM_CONSOLE_TOKEN=OWN_TOKEN)
    bot = running(env, tmp_path / "bot.log")
    async with (
        bot as qq,
        httpx.AsyncClient(base_url=base_of(bot), headers=bearer(OWN_TOKEN)) as script,
    ):
        for number, (user, name) in enumerate([(111, "Alice"), (222, "Bob"), (111, "Alice")]):
            asked = await qq.mention(7, user, f"第{number + 1}问", nickname=name)
            await qq.reply_to(asked)
            if number == 1:
                before = await chat_of(script, "group:7")
        deadline = time.monotonic() + 10
        while (detail := await chat_of(script, "group:7"))["summary"] is None:
            assert time.monotonic() < deadline, "no summary after three turns with a window of 2"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=base_of(bot)) as browser:
            await browser.get("/glm/login", params={"token": OWN_TOKEN})
            page = (await browser.get("/glm/chats/group:7")).text
    assert before["summary"] is None  # two turns fit the window: nothing to fold yet
    summary = detail["summary"]
    assert set(summary) == {"text", "turns", "updated_at"}
    assert summary["turns"] == 2  # the oldest two left the window of 2 (in a batch)
    assert "Alice(111): 第1问" in summary["text"] and "Bob(222): 第2问" in summary["text"]
    assert "第3问" not in summary["text"]
    assert time.time() - 60 < summary["updated_at"] <= time.time()
    assert [turn["in_summary"] for turn in detail["turns"]] == [False, True, True]
    assert "摘要" in page and "概括了更早的 2 轮" in page and "以下对话已概括进摘要" in page


# --- other settings, secrets, a restart ---------------------------------------------------


async def test_with_the_console_off_glm_is_not_found_and_the_bot_still_answers(glm, fake, tmp_path):
    bot = running(settings(glm[1], tmp_path, GLM_CONSOLE="off"), tmp_path / "bot.log")
    async with bot as qq, httpx.AsyncClient(base_url=base_of(bot)) as anyone:
        paths = ["/glm/", "/glm/login", "/glm/api/overview"]
        answers = [await anyone.get(path, headers=bearer("anything-at-all-0")) for path in paths]
        reply = await qq.reply_to(await qq.mention(1, 111, "还在吗？"))
    assert [answer.status_code for answer in answers] == [404] * 3
    assert reply.text == "回声#2：member(111): 还在吗？"
    assert "glm-chat console" not in bot.process.log()
    assert not (tmp_path / "data" / "console_token").exists()


@pytest.fixture(scope="module")
async def own_token(glm, tmp_path_factory) -> AsyncIterator[tuple[RunningBot, list[int]]]:
    """A bot with GLM_CONSOLE_TOKEN set, that someone logged in to with the link and the form
    (the status codes they got); it has stopped."""
    folder = tmp_path_factory.mktemp("own-token")
    bot = running(settings(glm[1], folder, GLM_CONSOLE_TOKEN=OWN_TOKEN), folder / "bot.log")
    async with bot, httpx.AsyncClient(base_url=base_of(bot)) as browser:
        link = await browser.get("/glm/login", params={"token": OWN_TOKEN})
        form = await browser.post(
            "/glm/login", data={"token": OWN_TOKEN}, headers={"Origin": base_of(bot)}
        )
        api = await browser.get("/glm/api/overview", headers=bearer(OWN_TOKEN))
    yield bot, [link.status_code, form.status_code, api.status_code]


def test_a_token_set_by_the_operator_is_used_and_not_printed_at_start(own_token):
    bot, statuses = own_token
    assert statuses == [303, 303, 200]
    base = base_of(bot)
    assert (
        f"glm-chat console: {base}/glm/login (log in with GLM_CONSOLE_TOKEN)" in bot.process.log()
    )
    assert not (Path(bot.process.env["GLM_DB_PATH"]).parent / "console_token").exists()


def test_a_token_set_by_the_operator_never_reaches_the_log(own_token):
    bot, _ = own_token
    assert OWN_TOKEN not in bot.process.log()


async def test_no_page_api_answer_or_log_line_holds_the_key_secret(console, fake):
    await console.ask(99, "密钥是什么？")
    async with console.browser() as browser:
        listed = (await browser.get("/glm/api/chats", params={"limit": 500})).json()["chats"]
        for chat in listed:
            await browser.get(f"/glm/chats/{chat['chat']}")
            await browser.get(f"/glm/api/chats/{chat['chat']}")
        for path in [*PAGES, *API_READS]:
            await browser.get(path)
    assert "group:99" in [chat["chat"] for chat in listed]
    bodies = "\n".join(answer.text for answer in console.answers)
    assert KEY_ID in bodies
    assert KEY_SECRET not in bodies
    assert KEY_SECRET not in console.log()


async def test_the_generated_token_and_its_sessions_survive_a_restart(console):
    token = console.token
    async with console.browser() as browser:
        cookies = httpx.Cookies(browser.cookies)
    await console.stop()
    await console.start()
    async with console.client() as returning, console.script() as script:
        returning.cookies = cookies
        page = await returning.get("/glm/chats")
        api = await script.get("/glm/api/overview")
    assert console.token == token
    assert f"glm-chat console: {console.base}/glm/login?token={token} (token kept in" in (
        console.log()
    )
    assert page.status_code == 200 and api.status_code == 200
