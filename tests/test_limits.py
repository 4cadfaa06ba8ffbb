from plugins.nonebot_plugin_glm_chat.chat.limits import Cooldown, OncePerDay, Verdict


def test_one_question_per_window_and_one_warning():
    now = [100.0]
    cooldown = Cooldown(lambda: now[0])
    assert cooldown.check("a", 10) is Verdict.ASK
    assert cooldown.check("b", 10) is Verdict.ASK  # others are not held up
    now[0] += 3
    assert cooldown.check("a", 10) is Verdict.WARN
    assert cooldown.remaining("a", 10) == 7
    assert cooldown.check("a", 10) is Verdict.QUIET
    now[0] += 7
    assert cooldown.check("a", 10) is Verdict.ASK


def test_no_cooldown_always_asks():
    cooldown = Cooldown()
    assert [cooldown.check("a", 0) for _ in range(3)] == [Verdict.ASK] * 3
    assert len(cooldown) == 0


def test_cooled_keys_are_forgotten():
    now = [0.0]
    cooldown = Cooldown(lambda: now[0])
    for user in range(2000):
        cooldown.check(str(user), 5)
    now[0] += 6
    cooldown.check("new", 5)
    assert len(cooldown) == 1


async def test_a_notice_is_given_once_a_day():
    day = ["2026-11-22"]
    notices = OncePerDay(lambda: day[0])
    assert await notices.first_today("group:1") and not await notices.first_today("group:1")
    assert await notices.first_today("group:2")
    day[0] = "2026-11-23"
    assert await notices.first_today("group:1")
