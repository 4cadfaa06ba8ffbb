from plugins.glm_chat.cooldown import Cooldown, Verdict


def test_one_question_per_window_and_one_warning():
    now = [100.0]
    cooldown = Cooldown(10, lambda: now[0])
    assert cooldown.check("a") is Verdict.ASK
    assert cooldown.check("b") is Verdict.ASK  # others are not held up
    now[0] += 3
    assert cooldown.check("a") is Verdict.WARN
    assert cooldown.remaining("a") == 7
    assert cooldown.check("a") is Verdict.QUIET
    now[0] += 7
    assert cooldown.check("a") is Verdict.ASK


def test_no_cooldown_always_asks():
    cooldown = Cooldown(0)
    assert [cooldown.check("a") for _ in range(3)] == [Verdict.ASK] * 3
    assert len(cooldown) == 0


def test_cooled_keys_are_forgotten():
    now = [0.0]
    cooldown = Cooldown(5, lambda: now[0])
    for user in range(2000):
        cooldown.check(str(user))
    now[0] += 6
    cooldown.check("new")
    assert len(cooldown) == 1
