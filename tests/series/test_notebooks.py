"""The series itself: the tiny preset through papermill, then nbval re-executes the outputs.

Cells marked ``# NBVAL_CHECK_OUTPUT`` (data counts, seeded metrics) must reproduce exactly;
``tests/nbval_sanitize.cfg`` masks paths and timings. Then what a user does with a run: load
``fused/`` through the Auto classes, ``mbmlab ask`` by text and by voice, the fusion training as
an ``accelerate launch`` script (user folders through the series: test_user_folders.py).
"""
import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pandas as pd
import pytest

from helpers import launch_two_cpu_processes, nbval_ipc_env
from mbmlab.lab import params as P
from mbmlab.lab.kernels import execute_notebook
from mbmlab.lab.runner import run_series

TESTS = Path(__file__).resolve().parents[1]  # tests/: the nbval settings
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny series, tracked in MLflow (off for the tests' other runs, see conftest)."""
    before = os.environ.get("MBMLAB_MLFLOW")
    os.environ["MBMLAB_MLFLOW"] = "1"
    try:
        return run_series("tiny", reports=tmp_path_factory.mktemp("reports"), progress=False)
    finally:
        os.environ["MBMLAB_MLFLOW"] = before if before is not None else "0"


def test_the_tiny_run_is_in_mlflow_with_its_parameters_and_metrics(tiny_run):
    from mlflow.tracking import MlflowClient

    from mbmlab.lab import tracking

    client = MlflowClient(tracking_uri=tracking.tracking_uri(tiny_run.parent))
    (found,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                                  filter_string=f"attributes.run_name = '{tiny_run.name}'")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    params = json.loads((tiny_run / "params.json").read_text())
    assert {k: v for k, v in found.data.metrics.items() if not k.startswith("train/")} == {
        tracking.mlflow_name(k): v for k, v in metrics.items()}
    assert {k: v for k, v in found.data.params.items() if "/" not in k} == {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    assert len(client.get_metric_history(found.info.run_id, "train/fuse_stage2/loss")) > 1  # the loss curve
    assert found.info.status == "FINISHED" and found.data.params["hardware/cpus"]


def test_tiny_series_writes_the_report(tiny_run):
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["status"] == "ok" and [nb["status"] for nb in run["notebooks"]] == ["ok"] * 5
    assert float(run["environment"]["fp32 matmul GFLOP/s"]) > 0  # times are read beside the machine's speed
    assert "fp32 matmul GFLOP/s" in (tiny_run / "index.html").read_text()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for name in ("vqa/exact_match", "baseline/majority/vqa/exact_match", "caption/BLEU-4", "caption/CIDEr",
                 "asr/wer", "asr/cer", "baseline/pocketsphinx/asr/wer", "baseline/pocketsphinx/asr/wer/ci95_high",
                 "asr/on_pocketsphinx_clips/wer", "vqa/minus_cnn_bow/exact_match", "spoken_vqa/exact_match", "spoken_vqa/typed_exact_match",
                 "spoken_vqa/cascade/exact_match", "spoken_vqa/cascade/exact_match/ci95_low",
                 "spoken_vqa/cascade_minus_typed/exact_match", "spoken_vqa/minus_typed/exact_match/ci95_high",
                 "lm/perplexity", "data/test/images", "bias/vqa_accuracy_gap/colour",
                 "bias/amplification", "bias/amplification/ci95_low", "bias/directional_amplification/A->T",
                 "bias/directional_amplification/T->A", "bias/caption_joint_tv_distance",
                 "fairness/asr/voice/difference", "fairness/asr/voice/difference/ci95_high", "fairness/asr/gender/ratio",
                 "fairness/spoken_vqa/accent/difference", "explain/object_share", "baseline/blind/vqa/exact_match",
                 "attention/max_abs_difference/sdpa", "attention/max_abs_difference/gpt2",
                 "align/image/recall@1", "align/audio/recall@5", "baseline/random_init/align/image/recall@1",
                 "baseline/chance/align/audio/recall@1", "fuse/final_validation_loss", "translated_vqa/exact_match/colour",
                 "translated_vqa/minus_english/exact_match/ci95_low", "translate/bleu", "speech_translate/bleu"):
        assert name in metrics, name
    tiny = P.PRESETS["tiny"]
    assert metrics["data/test/images"] == tiny["max_test_images"] + tiny["scenes_test_images"]
    assert metrics["data/train/clips"] == tiny["speech_max_clips"]
    words = re.search(r"CTC pretraining: (\d+) training clips and (\d+) word-sequence clips",
                      (tiny_run / "02_train.ipynb").read_text())  # 02 trains its CTC head on new sentences too
    assert words and int(words[1]) == tiny["speech_max_clips"] and 0 < int(words[2]) <= tiny["audio_ctc_word_sequences"]
    assert {"vqa/source/easyvqa/exact_match", "vqa/source/scenes/exact_match"} <= set(metrics)
    # 03 scored each stage-2 epoch on validation and kept the best (fuse_keep_best_epoch, on in the preset)
    epochs = pd.read_csv(tiny_run / "fuse_epochs.csv")
    assert epochs["epoch"].tolist() == [float(e) for e in range(1, int(tiny["fuse_epochs"]) + 1)]
    assert metrics["fuse/kept_epoch"] == epochs.loc[epochs["score"].idxmax(), "epoch"]
    assert {"fuse/validation/vqa/exact", "fuse/validation/asr/exact", "fuse/validation/spoken_vqa/exact"} <= set(metrics)
    assert "kept: epoch" in (tiny_run / "03_fuse.ipynb").read_text()
    index = (tiny_run / "index.html").read_text()
    assert "vqa/exact_match" in index and "baseline/majority/vqa/exact_match" in index
    for name in P.NOTEBOOKS:
        assert (tiny_run / f"{name}.html").stat().st_size > 10_000
        assert (tiny_run / f"{name}.ipynb").exists()
    assert (tiny_run / "fused" / "model.safetensors").exists()
    for encoder in ("image_encoder", "audio_encoder"):
        assert (tiny_run / encoder / "encoder" / "model.safetensors").exists()
    assert metrics["attention/max_abs_difference/gpt2"] < 1e-5
    assert sorted(p.name for p in (tiny_run / "figures").glob("*.png"))
    # where the time went: every training of the series (02's four, 03's two stages, 04's baselines)
    trainings = index.split('id="trainings"')[1].split("</table>")[0]
    for where in ("checkpoints/lm", "checkpoints/align_image", "checkpoints/ctc_audio", "checkpoints/fused/stage2",
                  "baselines/throughput/blind/stage2", "baselines/throughput/image_only/stage2"):
        assert f"<td>{where}</td>" in trainings, where
    assert "where the time went" in index.split('<section id="03_fuse">')[1].split("</section>")[0]


def test_a_second_run_reuses_01_to_03_and_a_changed_03_parameter_retrains_from_03(tiny_run):
    """Reuse by content on the real series (mbmlab.lab.reuse): the same parameters again reuse 01,
    02 and 03 (01 and 02 in ≤ 5 s together) and give the same metrics.json; 03's parameters changed
    (only 03 reads them) reuse 01 and 02 and change 03's metrics (that run stops after 03: `until`).
    The change is the scenes preset's reading path — the attend connector with 03's stage 0, stage
    2 brief — so this is also its end-to-end run through the real notebook (stage 0's history and
    metric, save and reload)."""
    first = json.loads((tiny_run / "metrics.json").read_text())
    again = run_series("tiny", reports=tiny_run.parent, progress=False)
    run = json.loads((again / "run.json").read_text())
    reused = {nb["name"]: nb for nb in run["notebooks"] if nb.get("reused")}
    assert sorted(reused) == ["01_collect", "02_train", "03_fuse"]
    assert reused["01_collect"]["seconds"] + reused["02_train"]["seconds"] <= 5.0
    assert json.loads((again / "metrics.json").read_text()) == first
    assert "reused" in (again / "index.html").read_text()

    changed = run_series("tiny", {"image_connector": "attend", "fuse_stage0_epochs": 2, "fuse_epochs": 1.0},
                         reports=tiny_run.parent, progress=False, until="03_fuse")  # stage 2 brief: 03 only, structural
    run = json.loads((changed / "run.json").read_text())
    assert run["status"] == "stopped" and not (changed / "04_evaluate.ipynb").exists()
    assert [nb["name"] for nb in run["notebooks"] if nb.get("reused")] == ["01_collect", "02_train"]
    metrics = json.loads((changed / "metrics.json").read_text())
    upstream = [n for n in first if n.startswith(("data/", "lm/", "align/", "ctc/", "attention/"))]
    assert upstream and all(metrics[n] == first[n] for n in upstream)
    assert metrics["fuse/final_train_loss"] != first["fuse/final_train_loss"]
    assert 1 <= metrics["fuse/stage0_epochs"] <= 2 and 0 <= metrics["fuse/stage0_validation_exact_match"] <= 1
    by_type = {n for n in metrics if n.startswith("fuse/stage0_validation_exact_match/")}
    assert len(by_type) >= 3 and "fuse/stage0_validation_exact_match/count" in by_type  # the scenes' types too
    assert len(pd.read_csv(changed / "read_history.csv")) == metrics["fuse/stage0_epochs"]
    assert re.search(r"stage 0: \d+ epochs \(\d+ steps", (changed / "03_fuse.ipynb").read_text())  # the output


def test_tiny_model_learns_something(tiny_run):
    """Even the tiny preset must beat answering 'yes' to everything."""
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["vqa/exact_match"] > metrics["baseline/majority/vqa/exact_match"]


def test_trained_baselines_join_the_vqa_table(tiny_run):
    """04 trains blind and image-only models like the fused one and scores an untrained one; the
    saved blind model cannot use the image and the image-only one cannot use the question."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mbmlab.analyses import baselines

    from mbmlab.training import fused
    from mbmlab.analyses.baselines import Baseline
    from mbmlab.data.collect import load_processed
    from mbmlab.data.tasks import task_examples

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for kind in P.BASELINES:
        for name in ("exact_match", "exact_match/ci95_low", "exact_match/ci95_high", "exact_match/yes/no"):
            assert f"baseline/{kind}/vqa/{name}" in metrics
        assert f"baseline/{kind}/vqa/exact_match" in (tiny_run / "index.html").read_text()
    # random_init is the fused architecture untrained: none of its weights is the trained model's
    # (mutation: ``untrained`` loading the saved fused model fails here), and it scores below the
    # fused model (an untrained LM seldom says a valid answer at all)
    fused_model = AutoModelForImageTextToText.from_pretrained(tiny_run / "fused")
    floor = baselines.untrained(fused_model.config, None, 0).model
    trained_weights = dict(fused_model.named_parameters())
    assert not any(torch.equal(w, trained_weights[n]) for n, w in floor.named_parameters() if w.numel() > 1)
    assert metrics["baseline/random_init/vqa/exact_match"] < metrics["vqa/exact_match"]
    processed = load_processed(json.loads((tiny_run / "dataset.json").read_text())["path"])
    examples = [e for e in task_examples(processed.images["test"], None, ["vqa"])][:60]
    for kind in ("blind", "image_only"):
        model = AutoModelForImageTextToText.from_pretrained(tiny_run / "baselines" / kind)
        processor = AutoProcessor.from_pretrained(tiny_run / "baselines" / kind)
        pixels, _ = fused.split_inputs(processed, processor, ("test",), ("image",))
        trained = Baseline(kind, model, processor, 1.0, 1, 0.0)
        answers = baselines.answer(trained, examples, pixels["test"], max_new_tokens=3, progress=False)
        if kind == "blind":  # other images, same answers
            other = baselines.answer(trained, examples, torch.flip(pixels["test"], dims=[0]), max_new_tokens=3,
                                     progress=False)
        else:  # other questions, same answers
            reworded = [e.__class__(e.task, e.image, e.clip, "what is this?", e.target) for e in examples]
            other = baselines.answer(trained, reworded, pixels["test"], max_new_tokens=3, progress=False)
        assert answers == other, kind


def test_trained_baselines_stop_early_on_the_validation_loss(tiny_run, tmp_path):
    """A baseline whose validation loss cannot improve (stage 2 at learning rate 0) stops after
    ``patience`` evaluations without a new best: with patience 1 at the second evaluation (half
    an epoch at 4 evaluations an epoch), keeping the first's weights — not at its 2-epoch cap.
    Mutation: train_baseline without its EarlyStoppingCallback trains to the cap and fails here.
    04's budget table prints the cap and the epoch kept beside the fused model's budget."""
    from mbmlab.analyses import baselines

    fuse_params = dict(json.loads((tiny_run / "fuse.json").read_text())["params"], fuse_stage1_epochs=0.0,
                       fuse_learning_rate=0.0)
    prepared = baselines.prepare(tiny_run, fuse_params)
    trained = baselines.train_baseline(prepared, fuse_params, "blind", 2.0, tmp_path, patience=1)
    assert trained.cap == 2.0 and trained.epochs == pytest.approx(2 / baselines.EVALS_PER_EPOCH, abs=0.05)
    assert trained.best_epoch == pytest.approx(1 / baselines.EVALS_PER_EPOCH, abs=0.05)
    assert (tmp_path / "blind" / "config.json").exists() and not (tmp_path / "checkpoints").exists()
    model = trained.model  # reloading the best checkpoint kept the LM head tied to the embedding
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    evaluated = (tiny_run / "04_evaluate.html").read_text()
    assert "stage-2 epoch cap" in evaluated and "weights kept: epoch (best validation loss)" in evaluated


def test_cnn_bow_trains_on_exactly_the_runs_vqa_rows(tiny_run, monkeypatch):
    from transformers import AutoProcessor

    from mbmlab.analyses import baselines
    from mbmlab.data.collect import load_processed
    from mbmlab.data.tasks import task_examples
    from mbmlab.training import cnn_bow

    processed = load_processed(json.loads((tiny_run / "dataset.json").read_text())["path"])
    seen = {}
    real_fit = cnn_bow.fit

    def spy(tower, dim, train, train_pixels, validation, validation_pixels, **kwargs):
        seen.update(train=train, validation=validation, pixels=(len(train_pixels), len(validation_pixels)))
        return real_fit(tower, dim, train, train_pixels, validation, validation_pixels, **dict(kwargs, max_epochs=1))

    monkeypatch.setattr(cnn_bow, "fit", spy)
    trained = baselines.train_cnn_bow(tiny_run, AutoProcessor.from_pretrained(tiny_run / "fused"), seed=0)
    for split in ("train", "validation"):  # every VQA row of the split, nothing else, none of the test split
        assert seen[split] == task_examples(processed.images[split], None, ["vqa"]), split
    assert seen["pixels"] == (len(processed.images["train"]), len(processed.images["validation"]))
    assert trained.kind == "cnn_bow" and trained.steps > 0
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["baseline/cnn_bow/vqa/exact_match"] > metrics["baseline/majority/vqa/exact_match"]


def test_explanation_maps_and_their_sanity_verdict(tiny_run):
    """04 records the sanity check with intervals and the verdict of the rule fixed before any run
    (``explain.sanity_metrics``: both intervals above 0); the tiny model is too small for the verdict
    to be asserted either way, so this checks that it is the rule's, and the maps' files."""
    import pandas as pd

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    rule = (metrics["explain/object_share/minus_area/ci95_low"] > 0
            and metrics["explain/object_share/minus_randomised/ci95_low"] > 0)
    assert metrics["explain/sanity_passed"] == float(rule)
    checks = pd.read_csv(tiny_run / "explain_sanity.csv")
    assert metrics["explain/object_share"] == pytest.approx(checks["object_share"].mean())
    for figure in ("04_explain_image", "04_explain_audio"):
        assert (tiny_run / "figures" / f"{figure}.png").stat().st_size > 5_000


def test_a_run_loads_through_the_auto_classes(tiny_run):
    import mbmlab  # noqa: F401  (registers the family)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_run / "fused")
    processor = AutoProcessor.from_pretrained(tiny_run / "fused")
    assert type(model).__name__ == "MbmForConditionalGeneration" and type(processor).__name__ == "MbmProcessor"
    assert set(model.config.modalities) == {"image", "audio"}


def mbmlab(*args):
    """The installed command in its own process."""
    return subprocess.run([str(Path(sys.executable).with_name("mbmlab")), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"HF_HUB_OFFLINE": "1"})


@pytest.fixture
def ask(capsys):
    """``mbmlab ask`` through the same ``cli.main`` in this process: the command's ~5 s of imports
    paid once, not per call (the installed entry point and its exit code: ``mbmlab`` above, in
    test_ask_answers_a_typed_and_a_spoken_question)."""
    from mbmlab.lab import cli

    def call(*args):
        capsys.readouterr()
        try:
            code = cli.main(["ask", *map(str, args)])
        except SystemExit as exit_:  # argparse's refusals
            code = exit_.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["mbmlab", "ask", *map(str, args)], code, out.out, out.err)
    return call


def test_ask_answers_a_typed_and_a_spoken_question(tiny_run, tmp_path, ask):
    from mbmlab.data.collect import load_processed

    processed = load_processed(json.loads((tiny_run / "dataset.json").read_text())["path"])
    clips = processed.speech["test"]
    row = next(i for i, k in enumerate(clips["kind"]) if k == "question")
    image_row = processed.images["test"]["image_id"].index(clips[row]["image_id"])
    picture = tmp_path / "picture.png"
    processed.images["test"][image_row]["image"].save(picture)
    question = tmp_path / "question.wav"
    samples = clips[row]["audio"].get_all_samples()
    with wave.open(str(question), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(samples.sample_rate)
        out.writeframes((samples.data[0].numpy() * 32767).astype("<i2").tobytes())

    typed = mbmlab("ask", tiny_run, "--image", picture, "--question", "what shape is in the image?")
    assert typed.returncode == 0 and typed.stdout.startswith("vqa: "), typed.stderr[-2000:]
    spoken = ask(tiny_run, "--image", picture, "--audio", question, "--speak", tmp_path / "answer.wav")
    assert spoken.returncode == 0 and spoken.stdout.startswith("spoken_vqa: "), spoken.stderr[-2000:]
    assert spoken.stdout.splitlines()[1].startswith("heard: ")  # transcribed first (the cascade)
    direct = ask(tiny_run, "--image", picture, "--audio", question, "--end-to-end")
    assert direct.returncode == 0 and "heard: " not in direct.stdout, direct.stderr[-2000:]
    answer = spoken.stdout.splitlines()[0].split(": ", 1)[1]
    if answer:
        assert (tmp_path / "answer.wav").stat().st_size > 1000
    bad = mbmlab("ask", tiny_run, "--image", tmp_path / "nope.png", "--question", "hi?")
    assert bad.returncode == 2 and "no image at" in bad.stderr


def test_ask_translates_into_chinese_and_speaks_it(tiny_run, tmp_path, ask):
    """The tiny run trained the translate tasks (its default tasks): ``--to zh`` prints a
    translation and ``--speak`` writes 16 kHz mono Mandarin; a language it was not trained on, an
    unknown one and a missing --to are refused with what is supported (exit 2); ``--question`` with
    ``--lang zh`` is answered by translated_vqa."""
    from mbmlab.data.collect import load_processed

    processed = load_processed(json.loads((tiny_run / "dataset.json").read_text())["path"])
    picture = tmp_path / "picture.png"
    processed.images["test"][0]["image"].save(picture)
    out = ask(tiny_run, "--image", picture, "--translate", "a red circle", "--to", "zh",
                 "--speak", tmp_path / "zh.wav")
    assert out.returncode == 0 and out.stdout.startswith("translate: "), out.stderr[-2000:]
    if out.stdout.splitlines()[0].split(": ", 1)[1]:
        with wave.open(str(tmp_path / "zh.wav")) as spoken:
            assert (spoken.getframerate(), spoken.getnchannels(), spoken.getsampwidth()) == (16_000, 1, 2)
            assert spoken.getnframes() > 4_000
    untrained = ask(tiny_run, "--image", picture, "--translate", "a red circle", "--to", "de")
    assert untrained.returncode == 2 and "not trained to translate into 'de'; it translates into zh" in untrained.stderr
    unknown = ask(tiny_run, "--image", picture, "--translate", "a red circle", "--to", "xx")
    assert unknown.returncode == 2 and "unsupported language 'xx'; supported: zh, de, fr, cs" in unknown.stderr
    missing = ask(tiny_run, "--image", picture, "--translate", "a red circle")
    assert missing.returncode == 2 and "needs --to LANGUAGE; supported: zh, de, fr, cs" in missing.stderr
    # answered in Chinese: asked in Chinese, or in English through the training questions' grammar
    for question, asked in (("图中是什么形状？", None), ("what shape is in the image?", "图中是什么形状？")):
        answered = ask(tiny_run, "--image", picture, "--question", question, "--lang", "zh")
        assert answered.returncode == 0 and answered.stdout.startswith("translated_vqa: "), answered.stderr[-2000:]
        assert (f"asked as: {asked}" in answered.stdout) == (asked is not None)
    outside = ask(tiny_run, "--image", picture, "--question", "what is this?", "--lang", "zh")
    assert outside.returncode == 2 and "ask in Chinese with --lang zh" in outside.stderr


def test_fusion_training_under_accelerate_launch_two_cpu_processes(tiny_run, tmp_path):
    tiny = P.for_notebook("03_fuse", P.resolve("tiny"))
    launch_two_cpu_processes("mbmlab.lab.launch_fuse", "--run", str(tiny_run), "--out", str(tmp_path / "out"),
                             "--params", json.dumps(tiny), "--max-steps", "2")
    summary = json.loads((tmp_path / "out" / "fuse.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert summary["steps"] == {"stage1": 2, "stage2": 2}
    assert (tmp_path / "out" / "fused" / "model.safetensors").exists()


def test_nbval_reproduces_the_checked_outputs(tiny_run):
    """nbval re-executes 01-03 and compares their checked outputs. 04 and 05 are executed a second
    time on the same inputs by the reuse test above (01-03 reused), whose metrics.json — every
    number 04 and 05 print — must equal the first run's; re-executing them here too cost CI ~90 s."""
    notebooks = [str(tiny_run / f"{name}.ipynb") for name in P.NOTEBOOKS[:3]]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--sanitize-with",
         str(TESTS / "nbval_sanitize.cfg"), "-p", "no:cacheprovider", "-p", "nbval_ipc", "-q", "--rootdir",
         str(tiny_run), *notebooks],
        capture_output=True, text=True, cwd=tiny_run, env=nbval_ipc_env() | {"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_fusion_study_trains_every_strategy_at_one_budget_and_each_answers(tiny_run, ask):
    """06_fusion_study on the tiny run: three strategies, the same steps and target tokens, the
    comparison in metrics.json, and each saved model answers through ``mbmlab ask``."""
    import pandas as pd

    values = P.for_notebook(P.NB_FUSION_STUDY, P.resolve("tiny", {"fuse_epochs": 1.0}))  # what is asserted is
    # structural (one budget, every metric, each model answers): a quarter of tiny's stage 2 suffices
    out = tiny_run / f"{P.NB_FUSION_STUDY}.ipynb"
    execute_notebook(ROOT / "notebooks" / f"{P.NB_FUSION_STUDY}.ipynb", out,
                     parameters={"run_dir": str(tiny_run), **values}, progress_bar=False, cwd=str(tiny_run))
    rows = pd.read_csv(tiny_run / "fusion_study.csv")
    assert list(rows["fusion"]) == list(P.FUSIONS)
    assert rows["train/steps"].nunique() == 1 and rows["train/target_tokens"].nunique() == 1
    assert rows["train/kept_epoch"].tolist() == [1.0] * len(P.FUSIONS)  # its one epoch, chosen on validation
    by = rows.set_index("fusion")
    # what differs by design: positions per row (one marker vs the media in the sequence), towers
    assert by.loc["cross_attention", "train/decoder_positions_per_row"] < by.loc["prefix", "train/decoder_positions_per_row"]
    assert by.loc["early", "parameters/total"] < by.loc["prefix", "parameters/total"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for fusion in P.FUSIONS:
        for name in ("vqa/exact_match", "caption/CIDEr", "asr/wer", "spoken_vqa/exact_match", "train/seconds",
                     "generate/tokens_per_second", "parameters/trainable"):
            assert f"fusion_study/{fusion}/{name}" in metrics, (fusion, name)
    study = json.loads((tiny_run / "fusion_study.json").read_text())
    assert study["chosen"] in P.FUSIONS and study["chosen_on"] == "validation"
    assert len(study["findings"]) >= 4 and all("not established" in line for line in study["findings"])  # 1 seed
    by_metric = {c["metric"] for c in study["comparisons"]}
    assert {"vqa/exact_match", "asr/wer"} <= by_metric
    picture = tiny_run / "picture.png"
    from mbmlab.data.collect import load_processed
    processed = load_processed(json.loads((tiny_run / "dataset.json").read_text())["path"])
    processed.images["test"][0]["image"].save(picture)
    for fusion in P.FUSIONS:
        answer = ask(tiny_run / "fusion_study" / f"{fusion}-seed0", "--image", picture,
                        "--question", "what color is the shape?")
        assert answer.returncode == 0 and answer.stdout.startswith("vqa: "), (fusion, answer.stderr[-2000:])


def test_fusion_training_is_reproducible_across_processes(tiny_run, tmp_path):
    """The same seed in two separate processes (different hash seeds) gives byte-identical
    fused weights: the fusion script run twice on the tiny run for 30 steps, the second time
    beside a busy process (load reordered float additions once: see
    test_fuse.test_media_rows_backward_is_bitwise_repeatable_under_load)."""
    tiny = json.dumps(P.for_notebook("03_fuse", P.resolve("tiny")))
    for name, hash_seed in (("a", "1"), ("b", "2")):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if name == "b" else None
        try:
            done = subprocess.run([sys.executable, "-m", "mbmlab.lab.launch_fuse", "--run", str(tiny_run), "--out",
                                   str(tmp_path / name), "--params", tiny, "--max-steps", "30"], capture_output=True,
                                  text=True, timeout=600,
                                  env=os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": hash_seed})
        finally:
            if busy is not None:
                busy.kill()
        assert done.returncode == 0, done.stderr[-2000:]
    a, b = ((tmp_path / n / "fused" / "model.safetensors").read_bytes() for n in ("a", "b"))
    assert a == b


ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the pages below (git-ignored)


def test_reports_render_in_a_browser_without_errors(tiny_run, tmp_path):
    """Headless Chromium opens, from disk, the tiny run's index.html (also copied alone, as an
    e-mail attachment would arrive), a comparison page and an executed notebook's HTML: no
    console errors, no failed loads (broken images), a screenshot of each in test-artifacts/.
    The harness itself must see a broken image and a script error on a page made to have them."""
    import shutil

    from mbmlab.lab import browser

    from mbmlab.lab import compare

    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><meta charset="utf-8"><img src="missing.png"><script>no_such_function()</script>')
    errors = browser.open_page(bad, tmp_path / "bad.png").errors
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors), errors
    assert any("no_such_function" in e for e in errors), errors

    other = tmp_path / "runs" / "other"
    other.mkdir(parents=True)
    for name in ("run.json", "params.json"):
        shutil.copy(tiny_run / name, other / name)
    shifted = {k: v * 0.9 for k, v in json.loads((tiny_run / "metrics.json").read_text()).items()}
    (other / "metrics.json").write_text(json.dumps(shifted))
    comparison = compare.compare([tiny_run, other], reports=tmp_path / "compare", log=lambda *_: None)
    alone = tmp_path / "alone" / "index.html"
    alone.parent.mkdir()
    shutil.copy(tiny_run / "index.html", alone)
    pages = {"index": tiny_run / "index.html", "index_alone": alone, "compare": comparison / "index.html",
             "notebook_04": tiny_run / "04_evaluate.html"}
    for name, page in pages.items():
        opened = browser.open_page(page, ARTIFACTS / f"{name}.png")
        assert opened.errors == [], (name, opened.errors)
        assert opened.screenshot.stat().st_size > 20_000, name


def test_asr_decoding_compares_ctc_weights_and_the_spoken_cascade(tiny_run):
    """``benchmarks/asr_decoding.py`` (docs/results.md quotes it) on the tiny run's validation clips."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "asr_decoding.py"), "--run", str(tiny_run),
                           "--split", "validation", "--weights", "0,0.5", "--spoken"],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(" | ")[0] for line in lines if line.startswith("weight")] == ["weight 0.00", "weight 0.50"]
    assert sum("spoken questions: cascade" in line for line in lines) == 2
    for line in (line for line in lines if "spoken questions: cascade" in line):
        counts = re.search(r"(\d+) transcribed wrong: .* in (\d+) \(search errors\), .* in (\d+) \(model errors\)", line)
        assert counts and int(counts[1]) == int(counts[2]) + int(counts[3]), line


def test_evaluate_split_scores_a_finished_run_on_validation_and_leaves_it_alone(tiny_run):
    """``benchmarks/evaluate_split.py`` (docs/results.md quotes it): 04 again in the run's
    ``on-validation/`` on the validation questions, with 01–03's metrics and none of 04's test
    numbers carried over (mutation: metrics.json copied whole → the cnn_bow line fails); the run's
    own files untouched; a second call refused, nothing overwritten."""
    own = {name: (tiny_run / name).read_bytes() for name in ("metrics.json", "vqa_predictions.csv", "params.json")}
    command = [sys.executable, str(ROOT / "benchmarks" / "evaluate_split.py"), "--run", str(tiny_run),
               "--set", "baselines=[]", "--set", "explain_images=0", "--set", "pocketsphinx_clips=0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation vqa/exact_match by type: " in done.stdout
    out = tiny_run / "on-validation"
    assert json.loads((out / "params.json").read_text())["evaluate_split"] == "validation"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(pd.read_csv(out / "vqa_predictions.csv")) == metrics["data/validation/questions"]
    assert not [name for name in metrics if name.startswith("baseline/cnn_bow/")]  # the test split's, not made here
    assert metrics["lm/perplexity"] == json.loads(own["metrics.json"])["lm/perplexity"]
    assert {name: (tiny_run / name).read_bytes() for name in own} == own
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "exists" in again.stderr


def test_stage0_probe_prints_stage0_and_the_probe_of_its_reading_by_type(tiny_run):
    """``benchmarks/stage0_probe.py`` (docs/results.md quotes it) on the tiny run: one epoch of
    stage 0 with mirrored images and a mixing layer, then the probe of the frozen reading on test."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stage0_probe.py"), "--run", str(tiny_run),
                           "--set", "image_connector=attend", "--set", "fuse_stage0_epochs=1", "--set",
                           "fuse_stage0_mirror=true", "--set", "attend_mix=16",
                           "--probe-epochs", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 0: 1 epochs" in done.stdout and "probe of the frozen reading: validation" in done.stdout
    assert "'colour':" in done.stdout.splitlines()[-1]
