"""The English → Chinese grammar on hand-written pairs: every lexicon entry, the counts, the lists,
"left of", every question template; and the whole language the drawn sources write."""
import random

import pytest

from mbmlab.data import chinese, scenes


@pytest.mark.parametrize("english, zh", [
    # every colour, in the easy-VQA caption form
    ("a red circle", "一个红色圆形"), ("a green circle", "一个绿色圆形"), ("a blue circle", "一个蓝色圆形"),
    ("a black circle", "一个黑色圆形"), ("a gray circle", "一个灰色圆形"), ("a teal circle", "一个青色圆形"),
    ("a brown circle", "一个棕色圆形"), ("a yellow circle", "一个黄色圆形"),
    # every shape and both sizes
    ("a red rectangle", "一个红色长方形"), ("a red triangle", "一个红色三角形"),
    ("a small red star", "一个小的红色星形"), ("a large blue triangle", "一个大的蓝色三角形"),
    # lists and "left of"
    ("a small red circle and a large blue star", "一个小的红色圆形和一个大的蓝色星形"),
    ("a small red circle, a large teal rectangle and a small yellow triangle",
     "一个小的红色圆形、一个大的青色长方形和一个小的黄色三角形"),
    ("a small gray circle left of a large brown star", "一个小的灰色圆形在一个大的棕色星形左边"),
    ("A  Blue Rectangle", "一个蓝色长方形"),  # case and spaces as the cleaner may leave them
])
def test_captions(english, zh):
    assert chinese.caption(english) == zh
    assert chinese.translate(english) == zh


QUESTION_CASES = [
    ("is there a red shape?", "有红色的形状吗？"),
    ("is there a green shape in the image?", "图中有绿色的形状吗？"),
    ("is a blue shape present?", "蓝色的形状存在吗？"),
    ("does the image contain a black shape?", "图中包含黑色的形状吗？"),
    ("is there not a gray shape?", "没有灰色的形状吗？"),
    ("is there not a teal shape in the image?", "图中没有青色的形状吗？"),
    ("is no brown shape present?", "棕色的形状不存在吗？"),
    ("does the image not contain a yellow shape?", "图中不包含黄色的形状吗？"),
    ("is there a circle?", "有圆形吗？"),
    ("is there a rectangle in the image?", "图中有长方形吗？"),
    ("is a triangle present?", "三角形存在吗？"),
    ("does the image contain a circle?", "图中包含圆形吗？"),
    ("is there not a rectangle?", "没有长方形吗？"),
    ("is there not a triangle in the image?", "图中没有三角形吗？"),
    ("is no circle present?", "圆形不存在吗？"),
    ("does the image not contain a rectangle?", "图中不包含长方形吗？"),
    ("what color is the shape?", "这个形状是什么颜色？"),
    ("what is the color of the shape?", "这个形状的颜色是什么？"),
    ("what color is the star?", "星形是什么颜色？"),
    ("what is the color of the triangle?", "三角形的颜色是什么？"),
    ("what shape is in the image?", "图中是什么形状？"),
    ("what shape does the image contain?", "图中包含什么形状？"),
    ("what shape is present?", "存在什么形状？"),
    ("what is the red shape?", "红色的形状是什么？"),
    ("how many shapes are there?", "有几个形状？"),
    ("what shape is the teal object?", "青色的物体是什么形状？"),
    ("is there a yellow star?", "有黄色星形吗？"),
    ("is the circle left of the star?", "圆形在星形左边吗？"),
]


@pytest.mark.parametrize("english, zh", QUESTION_CASES)
def test_questions(english, zh):
    assert chinese.question(english) == zh


def test_every_template_has_a_hand_written_case():
    matched = {en for en in chinese.QUESTIONS
               if any(chinese._pattern(en).fullmatch(case) for case, _ in QUESTION_CASES)}
    assert matched == set(chinese.QUESTIONS)


@pytest.mark.parametrize("english, zh", [
    ("yes", "是"), ("no", "否"), ("one", "一个"), ("two", "两个"), ("three", "三个"),
    ("teal", "青色"), ("rectangle", "长方形"), ("star", "星形"),
])
def test_answers(english, zh):
    assert chinese.answer(english) == zh
    assert chinese.translate(english) == zh


@pytest.mark.parametrize("text", [
    "a purple circle",  # not a colour of the vocabulary
    "a red circle above a blue star",  # no such relation
    "is the circle right of the star?",
    "a dog on a sofa",  # a user's caption
    "maybe",
    "a red circle and",
])
def test_outside_the_grammar_is_refused(text):
    with pytest.raises(chinese.Untranslatable):
        chinese.translate(text)


def test_the_scenes_language_translates_whole():
    """Every caption, question and answer of 300 drawn scenes is in the grammar, and no two
    different captions get the same translation (the grammar loses nothing)."""
    by_zh = {}
    for i in range(300):
        record = scenes.scene_record(0, "train", i, 32, {}, 0.0)
        zh = chinese.translate(record["caption"])
        assert by_zh.setdefault(zh, record["caption"]) == record["caption"]
        for q, a in zip(record["questions"], record["answers"]):
            assert chinese.translate(q).endswith("？")
            chinese.translate(a)
    assert len(by_zh) > 200


def test_easyvqa_questions_translate_whole():
    easy_vqa = pytest.importorskip("easy_vqa")
    texts, answers, _ = easy_vqa.get_test_questions()
    assert {chinese.translate(a) for a in answers} <= set(chinese.YES_NO_ZH.values()) | set(
        chinese.COLOURS_ZH.values()) | set(chinese.SHAPES_ZH.values())
    assert len({chinese.translate(q) for q in texts}) > 40
