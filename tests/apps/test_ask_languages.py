"""``mbmlab ask``'s translation choices and its Mandarin voice, without a model: which task what is
given asks for, the refusals, and the 16 kHz mono WAV that ``--speak`` writes."""
import shutil
import wave

import pytest

from mbmlab.apps.ask import AskError, speak, task_for


def test_translation_tasks_follow_from_what_is_given():
    assert task_for(True, False, False, True, "zh") == "translate"
    assert task_for(False, True, False, False, "zh") == "speech_translate"
    assert task_for(True, False, True) == "vqa"  # without --to, as before
    for given, message in [((True, False, False, True, ""), "needs --to LANGUAGE; supported: zh, de, fr, cs"),
                           ((True, False, False, True, "xx"), "unsupported language 'xx'; supported: zh, de, fr, cs"),
                           ((True, False, True, False, "zh"), "it does not answer --question"),
                           ((True, True, False, False, "zh"), "translate either an English text"),
                           ((False, False, False, True, "zh"), "translate either an English text")]:
        with pytest.raises(AskError, match=message):
            task_for(*given)


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
