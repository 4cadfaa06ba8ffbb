from plugins.glm_chat.qq.render import markdown_to_text, split_text


def test_markdown_becomes_plain_text():
    text = markdown_to_text(
        "# 标题\n\n**粗体** 和 *斜体* 和 `code`，见 [文档](https://example.com)\n\n"
        "- 第一\n* 第二\n> 引用\n\n```python\nprint('**x**')\n```\n\n"
        "| 名称 | 值 |\n|---|:-:|\n| a | 1 |\n\n---\n~~删除~~"
    )
    assert text == (
        "【标题】\n\n粗体 和 斜体 和 code，见 文档 (https://example.com)\n\n"
        "• 第一\n• 第二\n│ 引用\n\nprint('**x**')\n\n名称 | 值\na | 1\n\n————\n删除"
    )
    for marker in ("**", "```", "# ", "|---"):
        assert marker not in text.replace("print('**x**')", "")


def test_text_that_is_not_markdown_is_left_alone():
    for text in ("2*3*4 = 24", "snake_case_name", "a * b", "价格 $5", "C# 和 F#"):
        assert markdown_to_text(text) == text


def test_cq_code_lookalikes_stay_literal_text():
    assert markdown_to_text("[CQ:at,qq=all] 大家好") == "[CQ:at,qq=all] 大家好"


def test_split_prefers_paragraphs_and_respects_the_limit():
    paragraphs = ["甲" * 60, "乙" * 60, "丙" * 60]
    pieces = split_text("\n\n".join(paragraphs), limit=130)
    assert pieces == ["甲" * 60 + "\n\n" + "乙" * 60, "丙" * 60]
    long_line = "字" * 250
    assert [len(p) for p in split_text(long_line, limit=100)] == [100, 100, 50]
    assert split_text("short") == ["short"]
