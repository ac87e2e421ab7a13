"""The translate tasks' examples: sources, targets, the masking of colour or shape words, VQA in
the translations' language, and the prompts they become."""
import datasets
import pytest

from mbmlab.data.tasks import MASK, is_masked, mask_words, task_counts, task_examples
from mbmlab.models.processing_mbm import MbmProcessor

IMAGES = datasets.Dataset.from_dict({
    "image_id": ["a", "b", "c"], "caption": ["a blue circle", "", "a small red star left of a large teal circle"],
    "questions": [["what color is the shape?"], ["what shape is in the image?"], []],
    "answers": [["blue"], ["circle"], []], "question_types": [["colour"], ["shape"], []],
    "translation": ["一个蓝色圆形", "", "一个小的红色星形在一个大的青色圆形左边"], "language": ["zh", "zh", "zh"],
    "translated_questions": [["这个形状是什么颜色？"], [""], []], "translated_answers": [["蓝色"], [""], []]})
SPEECH = datasets.Dataset.from_dict({
    "image_id": ["a", "a", "c", "b"], "transcript": ["a blue circle", "what color is the shape?",
                                                     "a small red star left of a large teal circle", "a thing"],
    "kind": ["caption", "question", "caption", "caption"], "answer": ["", "blue", "", ""],
    "question_type": ["", "colour", "", ""]})


def test_translate_examples_pair_each_caption_with_its_translation():
    examples = task_examples(IMAGES, SPEECH, ("translate", "speech_translate"))
    assert task_counts(examples)["translate"] == 2 and task_counts(examples)["speech_translate"] == 2
    text = [(e.image, e.question, e.target, e.language) for e in examples if e.task == "translate"]
    assert text == [(0, "a blue circle", "一个蓝色圆形", "zh"),
                    (2, "a small red star left of a large teal circle", "一个小的红色星形在一个大的青色圆形左边", "zh")]
    spoken = [(e.clip, e.image, e.target) for e in examples if e.task == "speech_translate"]
    assert spoken == [(0, None, "一个蓝色圆形"), (2, None, "一个小的红色星形在一个大的青色圆形左边")]  # b: no translation


def test_masking_hides_the_words_of_its_kind_in_a_fixed_share_of_images():
    assert mask_words("a small red star left of a large teal circle", "colour") == \
        f"a small {MASK} star left of a large {MASK} circle"
    assert mask_words("a red starfish", "shape") == "a red starfish"  # whole words only
    assert mask_words("a red star", "shape") == f"a red {MASK}"
    with pytest.raises(ValueError, match="colour, shape"):
        mask_words("a red star", "size")
    everything = task_examples(IMAGES, None, ("translate",), translate_mask=1.0)
    assert [e.question for e in everything] == [f"a {MASK} circle", f"a small {MASK} star left of a large {MASK} circle"]
    assert [e.target for e in everything] == ["一个蓝色圆形", "一个小的红色星形在一个大的青色圆形左边"]  # targets keep them
    ids = [f"img-{i}" for i in range(4000)]
    share = sum(is_masked(i, 0.3) for i in ids) / len(ids)
    assert 0.27 < share < 0.33 and [is_masked(i, 0.3) for i in ids] == [is_masked(i, 0.3) for i in ids]
    assert not any(is_masked(i, 0.0) for i in ids)


def test_translate_prompts():
    assert MbmProcessor.prompt("translate", "a red circle", "zh") == "<image>translate to zh: a red circle"
    assert MbmProcessor.prompt("speech_translate", "a red circle", "zh") == "<audio>translate to zh:"
    with pytest.raises(ValueError, match="target language"):
        MbmProcessor.prompt("translate", "a red circle")
    with pytest.raises(ValueError, match="English source"):
        MbmProcessor.prompt("translate", "", "zh")


def test_translated_vqa_asks_each_translated_question_and_skips_the_untranslated():
    examples = task_examples(IMAGES, None, ("vqa", "translated_vqa"))
    asked = [(e.image, e.question, e.target, e.question_type, e.language) for e in examples if e.task == "translated_vqa"]
    assert asked == [(0, "这个形状是什么颜色？", "蓝色", "colour", "zh")]  # b's question had no translation
    assert task_counts(examples)["translated_vqa"] == 1 and task_counts(examples)["vqa"] == 2
    assert not any(e.task == "translated_vqa" for e in task_examples(IMAGES, None, ("vqa", "translate")))
    assert MbmProcessor.prompt("translated_vqa", "这个形状是什么颜色？", "zh") == \
        "<image>question (zh): 这个形状是什么颜色？ answer:"
    with pytest.raises(ValueError, match="question and its language"):
        MbmProcessor.prompt("translated_vqa", "这个形状是什么颜色？")


def test_the_language_model_reads_the_translated_questions_only_when_translating():
    from mbmlab.models.text import corpus_lines

    assert "question (zh): 这个形状是什么颜色？ answer: 蓝色" in corpus_lines(IMAGES, translations=True)
    assert not any("这个形状" in line for line in corpus_lines(IMAGES))
