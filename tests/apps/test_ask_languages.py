"""``mbmlab ask``'s language choices and its Mandarin voice, without a model: which task what is
given asks for, the question a --lang zh answer is asked, the refusals, and the 16 kHz mono WAV
that ``--speak`` writes."""
import re
import shutil
import wave
from types import SimpleNamespace

import pytest

from mbmlab.apps.ask import AskError, ask, speak, task_for
from mbmlab.metrics.generate import question_in


def test_translation_tasks_follow_from_what_is_given():
    assert task_for(True, False, False, True, "zh") == "translate"
    assert task_for(False, True, False, False, "zh") == "speech_translate"
    assert task_for(True, False, True) == "vqa"  # without --to, as before
    assert task_for(True, False, True, False, "zh") == "translated_vqa"  # --question with --lang zh
    for given, message in [((True, False, False, True, ""), "needs --to LANGUAGE; supported: zh, de, fr, cs"),
                           ((True, False, False, True, "xx"), "unsupported language 'xx'; supported: zh, de, fr, cs"),
                           ((True, False, True, True, "zh"), "either --translate TEXT or --question, not both"),
                           ((True, True, True, False, "zh"), "a spoken question is answered in English"),
                           ((False, False, True, False, "zh"), "a typed --question about a picture"),
                           ((True, True, False, False, "zh"), "translate either an English text"),
                           ((False, False, False, True, "zh"), "translate either an English text")]:
        with pytest.raises(AskError, match=message):
            task_for(*given)



def test_a_question_for_an_answer_in_chinese_is_asked_in_chinese():
    assert question_in("图中是什么形状？", "zh") == "图中是什么形状？"  # typed in Chinese: as typed
    assert question_in("what color is the shape?", "zh") == "这个形状是什么颜色？"  # the training questions' grammar
    assert question_in("is there a red circle?", "zh") == "有红色圆形吗？"
    assert question_in("was ist das?", "de") == "was ist das?"  # no grammar for other languages
    with pytest.raises(AskError, match="ask in Chinese with --lang zh"):
        question_in("what is this?", "zh")


def test_a_model_not_trained_to_answer_in_a_language_is_refused():
    """The refusal comes from the model's config before anything is generated (no processor needed)."""
    for languages, said in ((None, "it answers in English (the translated_vqa"), (["zh"], "it answers in English, zh")):
        model = SimpleNamespace(config=SimpleNamespace(modalities=("image",), answer_languages=languages,
                                                       translate_languages=["de"]))
        wanted = "de" if languages else "zh"
        with pytest.raises(AskError, match=rf"not trained to answer in '{wanted}'; {re.escape(said)}"):
            ask(model, None, image=object(), question="what shape is in the image?", language=wanted)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speak_writes_16khz_mono_in_the_language_voice(tmp_path):
    english, chinese = speak("a red circle", tmp_path / "en.wav"), speak("一个红色圆形", tmp_path / "zh.wav", "zh")
    for path in (english, chinese):
        with wave.open(str(path)) as out:
            assert (out.getframerate(), out.getnchannels(), out.getsampwidth()) == (16_000, 1, 2)
            assert out.getnframes() > 8_000  # more than half a second of speech
    # the language picks the voice: the same text is spoken otherwise by cmn
    assert english.read_bytes() != speak("a red circle", tmp_path / "en-zh.wav", "zh").read_bytes()
    with pytest.raises(AskError, match="no voice for language 'xx'"):
        speak("hello", tmp_path / "x.wav", "xx")
