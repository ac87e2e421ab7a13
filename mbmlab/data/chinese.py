"""English → Chinese for every text the drawn sources write: a small grammar with its lexicon.

The drawn sources (easy-VQA, the procedural scenes) write a closed language: captions built from
object phrases ("a small red circle", joined by commas and "and", or "A left of B"), 30 question
templates and one-word answers. This module translates exactly that language and refuses anything
else (``Untranslatable``), so a caption outside the grammar is a logged drop, never a wrong
translation. A user's own data brings its translations through ``translation_column``.

Choices, fixed once here:

- colours as the colour noun with 色 (红色, 蓝色 …), which also serves as the colour answer;
- shapes as their geometric names (圆形, 长方形, 三角形, 星形); "rectangle" is 长方形 (easy-VQA's
  rectangles are not square, so 正方形 would be wrong);
- an object phrase takes the numeral and measure word 一个, a size adjective takes 的:
  "a small red circle" → 一个小的红色圆形;
- lists take the enumeration comma 、 and 和: "A, B and C" → A、B和C; "A left of B" → A在B左边;
- yes/no questions end in 吗 and are answered 是 / 否 (the English answer's truth value, also for
  the negated templates: "is there not a red shape?" → 没有红色的形状吗？ → 是 when there is none);
- counts answer with the measure word: one / two / three → 一个 / 两个 / 三个 (两, not 二, before
  a measure word).
"""
from __future__ import annotations

import re

from .attributes import COLOURS, SHAPES, SIZES

COLOURS_ZH = {"red": "红色", "green": "绿色", "blue": "蓝色", "black": "黑色", "gray": "灰色",
              "teal": "青色", "brown": "棕色", "yellow": "黄色"}
SHAPES_ZH = {"circle": "圆形", "rectangle": "长方形", "triangle": "三角形", "star": "星形"}
SIZES_ZH = {"small": "小", "large": "大"}
COUNTS_ZH = {"one": "一个", "two": "两个", "three": "三个"}
YES_NO_ZH = {"yes": "是", "no": "否"}

for _table, _names, _what in ((COLOURS_ZH, COLOURS, "colour"), (SHAPES_ZH, SHAPES, "shape"),
                              (SIZES_ZH, SIZES, "size")):
    if tuple(_table) != tuple(_names):
        raise RuntimeError(f"the Chinese {_what} lexicon has {tuple(_table)}, mbmlab.data.attributes {_names}")

# English question → Chinese; {c} a colour, {s} and {t} shapes. easy-VQA's 24 templates, then the
# scenes' (their "what color is the {s}?" is easy-VQA's).
QUESTIONS = {
    "is there a {c} shape?": "有{c}的形状吗？",
    "is there a {c} shape in the image?": "图中有{c}的形状吗？",
    "is a {c} shape present?": "{c}的形状存在吗？",
    "does the image contain a {c} shape?": "图中包含{c}的形状吗？",
    "is there not a {c} shape?": "没有{c}的形状吗？",
    "is there not a {c} shape in the image?": "图中没有{c}的形状吗？",
    "is no {c} shape present?": "{c}的形状不存在吗？",
    "does the image not contain a {c} shape?": "图中不包含{c}的形状吗？",
    "is there a {s}?": "有{s}吗？",
    "is there a {s} in the image?": "图中有{s}吗？",
    "is a {s} present?": "{s}存在吗？",
    "does the image contain a {s}?": "图中包含{s}吗？",
    "is there not a {s}?": "没有{s}吗？",
    "is there not a {s} in the image?": "图中没有{s}吗？",
    "is no {s} present?": "{s}不存在吗？",
    "does the image not contain a {s}?": "图中不包含{s}吗？",
    "what color is the shape?": "这个形状是什么颜色？",
    "what is the color of the shape?": "这个形状的颜色是什么？",
    "what color is the {s}?": "{s}是什么颜色？",
    "what is the color of the {s}?": "{s}的颜色是什么？",
    "what shape is in the image?": "图中是什么形状？",
    "what shape does the image contain?": "图中包含什么形状？",
    "what shape is present?": "存在什么形状？",
    "what is the {c} shape?": "{c}的形状是什么？",
    "how many shapes are there?": "有几个形状？",
    "what shape is the {c} object?": "{c}的物体是什么形状？",
    "is there a {c} {s}?": "有{c}{s}吗？",
    "is the {s} left of the {t}?": "{s}在{t}左边吗？",
}

_WORDS = {"c": (COLOURS, COLOURS_ZH), "s": (SHAPES, SHAPES_ZH), "t": (SHAPES, SHAPES_ZH)}


def _pattern(template: str) -> re.Pattern:
    out = re.escape(template)
    for slot, (words, _) in _WORDS.items():
        out = out.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{'|'.join(words)})")
    return re.compile(out)


_QUESTIONS = [(_pattern(en), zh) for en, zh in QUESTIONS.items()]
_PHRASE = re.compile(rf"a (?:(?P<size>{'|'.join(SIZES)}) )?(?P<colour>{'|'.join(COLOURS)}) "
                     rf"(?P<shape>{'|'.join(SHAPES)})")


class Untranslatable(ValueError):
    """A text outside the grammar of the drawn sources."""


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def phrase(text: str) -> str:
    """One object phrase: "a small red circle" → 一个小的红色圆形."""
    match = _PHRASE.fullmatch(text)
    if not match:
        raise Untranslatable(f"{text!r} is not an object phrase (a [size] colour shape)")
    size = SIZES_ZH[match["size"]] + "的" if match["size"] else ""
    return "一个" + size + COLOURS_ZH[match["colour"]] + SHAPES_ZH[match["shape"]]


def caption(text: str) -> str:
    """A caption of the drawn sources: one phrase, "A left of B", "A and B", "A, B and C"."""
    text = _normal(text)
    left, sep, right = text.partition(" left of ")
    if sep:
        return phrase(left) + "在" + phrase(right) + "左边"
    head, sep, last = text.rpartition(" and ")
    if not sep:
        return phrase(text)
    return "、".join(phrase(p) for p in head.split(", ")) + "和" + phrase(last)


def question(text: str) -> str:
    """One of the drawn sources' question templates, in Chinese."""
    text = _normal(text)
    for pattern, zh in _QUESTIONS:
        match = pattern.fullmatch(text)
        if match:
            return zh.format(**{slot: _WORDS[slot][1][word] for slot, word in match.groupdict().items()})
    raise Untranslatable(f"{text!r} matches none of the {len(QUESTIONS)} question templates")


def answer(text: str) -> str:
    """A one-word answer: yes/no, a colour, a shape or a count."""
    text = _normal(text)
    for table in (YES_NO_ZH, COLOURS_ZH, SHAPES_ZH, COUNTS_ZH):
        if text in table:
            return table[text]
    raise Untranslatable(f"{text!r} is not a yes/no, colour, shape or count answer")


def translate(text: str) -> str:
    """A caption, a question (ends in "?") or an answer of the drawn sources, in Chinese."""
    text = _normal(text)
    if text.endswith("?"):
        return question(text)
    if " " not in text:
        return answer(text)
    return caption(text)


LEXICON = {"colour": COLOURS_ZH, "shape": SHAPES_ZH}  # the kinds of word the masking probe hides


def words_in(text: str, kind: str) -> list[str]:
    """The Chinese ``kind`` words ("colour", "shape") of ``text``, in order: what a translation
    says of the objects' colours or shapes."""
    words = sorted(LEXICON[kind].values(), key=len, reverse=True)
    return re.findall("|".join(words), text)
