import random
import textwrap

import pytest

from plugins.nonebot_plugin_glm_chat.qq import render
from plugins.nonebot_plugin_glm_chat.qq.render import markdown_to_text, split_text


def test_markdown_becomes_plain_text():
    text = markdown_to_text(
        "# 标题\n\n**粗体** 和 *斜体* 和 `code`，见 [文档](https://example.com)\n\n"
        "- 第一\n- 第二\n\n> 引用\n\n```python\nprint('**x**')\n```\n\n"
        "| 名称 | 值 |\n|---|:-:|\n| a | 1 |\n\n---\n~~删除~~"
    )
    assert text == (
        "【标题】\n\n粗体 和 斜体 和 code，见 文档 (https://example.com)\n\n"
        "• 第一\n• 第二\n\n│ 引用\n\nprint('**x**')\n\n名称 | 值\na | 1\n\n————\n\n删除"
    )


@pytest.mark.parametrize(
    "text", ["2*3*4 = 24", "2**10 = 1024", "snake_case_name", "a * b", "价格 $5", "C# 和 F#"]
)
def test_text_that_is_not_markdown_is_left_alone(text):
    assert markdown_to_text(text) == text


def test_python_names_keep_their_underscores():
    text = markdown_to_text(
        "在 `__init__` 里设置；删掉 __pycache__ 目录和 __init__.py，"
        '再看 if __name__ == "__main__": 与 `**kwargs`'
    )
    assert text == (
        "在 __init__ 里设置；删掉 __pycache__ 目录和 __init__.py，"
        '再看 if __name__ == "__main__": 与 **kwargs'
    )


def test_bold_beside_chinese_punctuation_loses_its_markers():
    assert markdown_to_text("**注意：**这里很重要。**（提示）**后面") == (
        "注意：这里很重要。（提示）后面"
    )


def test_task_lists_show_their_boxes():
    assert markdown_to_text("- [ ] 写测试\n- [x] 修 bug\n- [X] 发布\n- 普通项") == (
        "☐ 写测试\n☑ 修 bug\n☑ 发布\n• 普通项"
    )
    assert markdown_to_text("1. [x] 第一步\n2. [ ] 第二步") == "1. ☑ 第一步\n2. ☐ 第二步"


def test_nested_lists_are_indented_and_keep_their_numbers():
    text = markdown_to_text(
        "3. 准备\n   - 安装 *Python*\n   - [x] 建虚拟环境\n     1. 创建\n     2. 激活\n4. 运行"
    )
    assert text == (
        "3. 准备\n   • 安装 Python\n   ☑ 建虚拟环境\n     1. 创建\n     2. 激活\n4. 运行"
    )


def test_tables_become_rows_of_cells():
    text = markdown_to_text(
        "| 命令 | 作用 |\n| :--- | ---: |\n| `ls -a` | **列出** 文件 |\n| `a\\|b` | 管道 |"
    )
    assert text == "命令 | 作用\nls -a | 列出 文件\na|b | 管道"


CODE = "def f(a_b, *args, **kw):\n    x = 2*3*4  # __x__\n\n\n\n    return `x`\n"


def test_fenced_code_is_kept_exactly_and_set_apart():
    text = markdown_to_text(f"例子：\n```python\n{CODE}```\n之后")
    assert text == f"例子：\n\n{CODE}\n之后"


def test_code_in_a_list_item_is_unindented():
    markdown = "- 步骤：\n" + textwrap.indent(f"```\n{CODE}```", "  ") + "\n- 完成"
    assert markdown_to_text(markdown) == f"• 步骤：\n\n{CODE.rstrip()}\n\n• 完成"


def test_indented_code_is_kept_exactly():
    assert markdown_to_text("看：\n\n    if x:\n        y = a_b * 2\n\n好") == (
        "看：\n\nif x:\n    y = a_b * 2\n\n好"
    )


def test_html_and_cq_lookalikes_stay_literal_text():
    assert markdown_to_text("[CQ:at,qq=all] 大家好") == "[CQ:at,qq=all] 大家好"
    assert markdown_to_text("<div>\n块\n</div>") == "<div>\n块\n</div>"
    assert markdown_to_text("HTML 里的 <think> 和 <b>粗</b>") == "HTML 里的 <think> 和 <b>粗</b>"


def test_links_and_images():
    text = markdown_to_text(
        "[文档](https://example.com/文档?a=1&b=2) [https://a.cn](https://a.cn) <https://b.cn> "
        "![猫](https://i.cn/c.png) ![](https://i.cn/d.png)\n\n[1]: https://ref.cn"
    )
    assert text == (
        "文档 (https://example.com/文档?a=1&b=2) https://a.cn https://b.cn "
        "[图片: 猫] https://i.cn/c.png [图片] https://i.cn/d.png\n\n[1]: https://ref.cn"
    )


def test_quotes_rules_and_blank_lines():
    text = markdown_to_text("> 第一段\n>\n> > 嵌套\n\n\n\n\n***\n\n标题\n===")
    assert text == "│ 第一段\n│\n│ │ 嵌套\n\n————\n\n【标题】"


def test_split_prefers_paragraphs_and_respects_the_limit():
    paragraphs = ["甲" * 60, "乙" * 60, "丙" * 60]
    pieces = split_text("\n\n".join(paragraphs), limit=130)
    assert pieces == ["甲" * 60 + "\n\n" + "乙" * 60, "丙" * 60]
    long_line = "字" * 250
    assert [len(p) for p in split_text(long_line, limit=100)] == [100, 100, 50]
    assert split_text("short") == ["short"]


def test_split_never_cuts_a_line_that_fits():
    assert split_text("行" * 3005 + "\n" + "续" * 2000) == ["行" * 3005, "续" * 2000]
    text = "短\n\n" + "行" * 3005 + "\n" + "续" * 2000
    assert split_text(text) == ["短", "行" * 3005, "续" * 2000]


def test_split_falls_back_to_sentence_ends_and_spaces():
    sentence = "一句话。"
    assert split_text(sentence * 30, limit=50) == [sentence * 12, sentence * 12, sentence * 6]
    words = " ".join(["word"] * 30)
    pieces = split_text(words, limit=50)
    assert all(len(p) <= 50 and not p.startswith(" ") for p in pieces)
    assert " ".join(pieces) == words


def test_split_keeps_the_indentation_of_a_piece_that_starts_in_code():
    assert split_text("说明\n    缩进的代码", limit=10) == ["说明", "    缩进的代码"]


def test_text_taken_as_plain_renders_as_the_parser_would_render_it():
    """The shortcut for text without Markdown agrees with the parser on every text it takes,
    over random texts of plain words, markup, spaces and line breaks."""
    pieces = [
        *"你好世界。！abc12",
        "1.",
        "2)",
        "10",
        " ",
        "  ",
        "\n",
        "\n\n",
        " \n",
        "\t",
        "\u3000",
        *"#*_-+=><&|[]`~\\!:()",
    ]
    rng = random.Random(20261207)
    taken = 0
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        plain = render._plain_paragraphs(text)
        if plain is not None:
            taken += 1
            assert plain == render._rendered(text), repr(text)
    assert taken > 2000  # the shortcut is taken often enough for the check to mean something


@pytest.mark.parametrize(
    "text",
    ["回声#3：第1轮问题2", "好的！\n\n明天见。  \n再见", "\n\n  \n第一段\n\n\n\n第二段\n"],
)
def test_plain_answers_skip_the_parser(text):
    assert render._plain_paragraphs(text) == render._rendered(text) is not None
