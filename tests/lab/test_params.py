import ast

import papermill as pm
import pytest

from mbmlab.lab import params as P
from mbmlab.lab.paths import project_root


def test_default_preset_is_the_schema():
    assert P.resolve("default") == P.defaults()


def test_presets_only_name_known_parameters_and_validate():
    for name, preset in P.PRESETS.items():
        assert set(preset) <= set(P.SCHEMA), name
        P.resolve(name)


def test_bad_choice_lists_allowed_values():
    with pytest.raises(P.ParameterError, match="allowed values: prefix"):
        P.resolve("tiny", {"fusion": "nonsense"})


@pytest.mark.parametrize("override, message", [
    ({"no_such_thing": 1}, "unknown parameter 'no_such_thing'"),
    ({"seed": "abc"}, "not an integer"),
    ({"seed": -1}, "below the minimum"),
    ({"val_fraction": 0.9}, "above the maximum"),
    ({"vision_tower": "vit", "patch_size": 5}, "must divide image_size"),
    ({"lm_heads": 3}, "must divide lm_dim"),
    ({"vision_tower": "vit", "patch_size": 4, "pixel_shuffle": 3}, "must divide the 16×16 grid"),
    ({"pixel_shuffle": 3}, "must divide the 4×4 grid of image states \\(resnet"),
    ({"tasks": []}, "tasks is empty"),
    ({"tasks": ["vqa", "ocr"]}, "allowed values: caption, vqa, asr, spoken_vqa"),
    ({"fuse_train_parts": ["eyes"]}, "allowed values: vision_tower"),
    ({"projector": "mlp9x"}, "allowed values: linear, mlp2x_gelu"),
    ({"sources": ["easyvqa", "nope"]}, "allowed values: easyvqa, scenes, speech, user"),
    ({"sources": ["speech"]}, "speaks the captions and questions of an image source"),
    ({"sources": ["user"]}, "exactly one of user_dir"),
    ({"sources": ["scenes"], "bias_pairs": ["circle:purple"]}, "must be shape:colour"),
    ({"min_audio_seconds": 5, "max_audio_seconds": 2}, "min_audio_seconds must be below"),
    ({"speech_voices": ["espeak-us-m"]}, "speech_heldout_voices: held-out voices .* are not among the voices"),
    ({"speech_voices": ["espeak-us-m"], "speech_heldout_voices": ["espeak-us-m"]}, "every voice is held out"),
    ({"fuse_stage0_epochs": 5}, "trains the attend connector's reading; image_connector is 'pooled'"),
])
def test_bad_values_are_refused(override, message):
    with pytest.raises(P.ParameterError, match=message):
        P.resolve("default", override)


def test_the_registries_implement_exactly_the_names_the_schema_offers():
    """The schema's choices come from mbmlab.names (no torch); each registry that implements a
    name list is checked against it at import, and here once more."""
    from mbmlab import names
    from mbmlab.data.voices import VOICE_NAMES
    from mbmlab.models import connectors, fusion, vision

    assert tuple(fusion.FUSIONS) == names.FUSIONS == P.SCHEMA["fusion"].choices
    assert tuple(connectors.PROJECTORS) == names.PROJECTORS == P.SCHEMA["projector"].choices
    assert names.TOWERS == P.SCHEMA["vision_tower"].choices and vision.TOWERS is names.TOWERS
    assert P.SCHEMA["tasks"].choices == tuple(names.TASKS) and P.SCHEMA["baselines"].choices == tuple(names.BASELINES)
    assert P.SCHEMA["speech_voices"].choices == VOICE_NAMES
    with pytest.raises(RuntimeError, match="registry has"):  # a strategy added without its name
        names.check_registry({**fusion.FUSIONS, "late": None}, names.FUSIONS, "fusion strategy")


def test_unknown_preset():
    with pytest.raises(P.ParameterError, match="allowed values: tiny, default, full, fusion-study"):
        P.resolve("huge")


def test_command_line_values_are_parsed_as_json_when_possible():
    assert P.parse_override("fuse_epochs=2.5") == ("fuse_epochs", 2.5)
    assert P.parse_override("projector=linear") == ("projector", "linear")
    assert P.resolve("default", dict([P.parse_override("seed=3")]))["seed"] == 3
    with pytest.raises(P.ParameterError, match="key=value"):
        P.parse_override("seed")


def test_notebook_check_refuses_foreign_parameters():
    with pytest.raises(P.ParameterError, match="does not take"):
        P.check("01_collect", {"fusion": "prefix"})


@pytest.mark.parametrize("notebook", P.ALL)
def test_notebook_parameters_cell_agrees_with_schema(notebook):
    """One source of truth: each notebook declares exactly its schema parameters, with schema defaults."""
    path = project_root() / "notebooks" / f"{notebook}.ipynb"
    declared = pm.inspect_notebook(str(path))
    expected = {"run_dir": ""} | {k: p.default for k, p in P.SCHEMA.items() if notebook in p.notebooks}
    assert set(declared) == set(expected)
    for name, info in declared.items():
        assert ast.literal_eval(info["default"]) == expected[name], name


def test_a_runs_parameters_come_back_with_overrides_under_todays_schema(tmp_path):
    """What the benchmarks re-run a step with: the run's own values (a key the schema no longer
    has dropped), ``--set``-style texts on top, validated; a bad override refused."""
    import json

    values = P.resolve("tiny") | {"align_epochs": 3.0}
    (tmp_path / "run.json").write_text(json.dumps({"params": values | {"retired_parameter": 1}}))
    got = P.of_run(tmp_path, ["seed=4"])
    assert got == values | {"seed": 4}  # the run's align_epochs, not a preset's
    with pytest.raises(P.ParameterError):
        P.of_run(tmp_path, ["align_epochs=-1"])
