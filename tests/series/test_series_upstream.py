"""What needs only a tiny run's 01 and 02: 07_bias_study through the real notebook, the CTC
pretraining benchmark (benchmarks/ctc_pretraining.py) and the image alignment benchmark
(benchmarks/image_alignment.py).

A module of its own so that pytest-xdist (``--dist loadscope``: a module whole on one worker) runs
it beside test_notebooks.py, the longest module, instead of after it on the same worker. Its run
stops after 02_train; where test_notebooks.py's tiny run has stored 01 and 02 in this session's
cache (``MBMLAB_CACHE``, conftest.py) they are reused by content.
"""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import benchmark
from mbmlab.lab import params as P
from mbmlab.lab.kernels import execute_notebook
from mbmlab.lab.runner import run_series
from mbmlab.training import fused

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def upstream_run(tmp_path_factory):
    run = run_series("tiny", reports=tmp_path_factory.mktemp("reports"), progress=False, until="02_train")
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
    return run


def test_bias_study_injects_strengths_and_measures_them(upstream_run):
    """07_bias_study on a tiny run (its scenes inject circle:red): two strengths and the
    mitigation, two seeds each, the realised bias follows the injected one, every measure with its
    interval in metrics.json, the probes saved, the figure drawn, findings written from the
    differences over seeds. Read as the bias-study preset reads the scenes: the attend connector
    taught in stage 0 (on the validation split 07 then prepares too)."""
    import pandas as pd

    values = P.for_notebook(P.NB_BIAS_STUDY, P.resolve("tiny", {"bias_strengths": [0.3, 0.9], "probe_images": 6,
                                                                "bias_seeds": 2} | P.SCENES_READ
                                                               | {"fuse_stage0_epochs": 2, "fuse_stage1_epochs": 0.5,
                                                                  "fuse_epochs": 2.0}))  # six trainings: what is
    # asserted is structural (arms, seeds, measures, probes), so each trains briefly
    out = upstream_run / f"{P.NB_BIAS_STUDY}.ipynb"
    execute_notebook(ROOT / "notebooks" / f"{P.NB_BIAS_STUDY}.ipynb", out,
                     parameters={"run_dir": str(upstream_run), **values}, progress_bar=False, cwd=str(upstream_run))
    table = pd.read_csv(upstream_run / "bias_study.csv")
    assert list(zip(table["strength"], table["mitigation"], table["seed"])) == [
        (0.3, "none", 0), (0.3, "none", 1), (0.9, "none", 0), (0.9, "none", 1), (0.9, "oversample", 0), (0.9, "oversample", 1)]
    realised = table["realised P(prior colour | biased shape)"]
    assert realised[0] == realised[1] < realised[2]  # the injected strength is what the training data holds; seeds share it
    weights = [(upstream_run / "bias_study" / f"strength0.90-none-seed{k}" / "fused" / "model.safetensors").read_bytes()
               for k in (0, 1)]
    assert weights[0] != weights[1]  # the seeds train other models (mutation: the seed not passed on fails here)
    for k in (0, 1):  # each arm's stage 2 kept its best epoch on the validation scenes, as 03 does
        scored = pd.read_csv(upstream_run / "bias_study" / f"strength0.90-none-seed{k}" / "checkpoints" / "stage2" /
                             "selection" / "epochs.csv")
        assert scored["epoch"].tolist() == [1.0, 2.0] and "vqa/exact" in scored
    metrics = json.loads((upstream_run / "metrics.json").read_text())
    for key in ("none/0.30", "none/0.90", "oversample/0.90"):
        for name in ("vqa/exact_match", "bias/amplification", "bias/directional_amplification/A->T/ci95_low",
                     "bias/directional_amplification/T->A", "counterfactual/colour/follows_image"):
            assert f"bias_study/{key}/{name}" in metrics, (key, name)
    probes = pd.read_csv(upstream_run / "bias_study_probes.csv")
    assert set(probes["changed"]) == {"colour", "shape"} and probes["image_id"].nunique() <= 6
    assert (upstream_run / "figures" / "07_bias_study.png").stat().st_size > 10_000
    findings = json.loads((upstream_run / "bias_study.json").read_text())["findings"]
    assert "(means over 2 seeds)" in findings[0] and "difference over 2 seeds (paired t, Holm p" in findings[0]
    assert "bias_study/none/0.90/vqa/exact_match/seed_ci95_low" in metrics
    # the tiny run has spoken questions: each model's voice-group disparities
    for key in ("none/0.30", "none/0.90", "oversample/0.90"):
        # (the spoken-VQA ratio is 0/0, left out, where a tiny model answers no spoken question right)
        for name in ("asr/wer", "fairness/asr/voice/difference/ci95_high", "fairness/asr/engine/ratio",
                     "fairness/spoken_vqa/engine/difference"):
            assert f"bias_study/{key}/{name}" in metrics, (key, name)
    assert (upstream_run / "figures" / "07_speech_fairness.png").stat().st_size > 10_000
    assert (upstream_run / "bias_study" / "strength0.90-none-seed1" / "asr_predictions.csv").exists()


def test_ctc_pretraining_benchmark_trains_with_the_policy_given(upstream_run):
    """The benchmark trains 02's CTC step on the run's clips and prints the table per kind and voice
    group; the SpecAugment policy on its command line reaches the training (mutation: ``masks`` not
    passed on by ``pretrain_ctc`` → both runs train alike and the losses are equal)."""
    def run(*flags):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ctc_pretraining.py"), "--run", str(upstream_run),
                               "--epochs", "2", "--output", str(upstream_run / "ctc_benchmark"), *flags],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        loss = float(re.search(r"last logged loss (\S+)$", done.stdout, re.M).group(1))
        return done.stdout, loss

    out, default = run("--word-sequences", "0")
    _, unmasked = run("--word-sequences", "0", "--time-masks", "0", "--time-fraction", "0")
    assert "time masks 2 × up to 0.2 of the clip" in out
    assert math.isfinite(default) and math.isfinite(unmasked) and default != unmasked
    for split in ("validation", "test"):
        table = out.split(f"{split}, greedy CTC:")[1].split(f"{split}, the questions per voice:")
        assert re.search(r"^ *question / trained +\d+ ", table[0], re.M), out
        assert re.search(r"^ *espeak-\S+ +\d+ ", table[1], re.M), out
    assert re.search(r"^ *question / held out +\d+ ", out, re.M)  # the tiny preset holds voices out of training
    words, _ = run()  # as many word-sequence clips as 02 trained with (mutation: a default of 0 → fails)
    asked = json.loads((upstream_run / "params.json").read_text())["audio_ctc_word_sequences"]
    assert asked > 0
    clips = int(re.search(r"^(\d+) training clips", out, re.M).group(1))
    dropped = re.search(rf"^dropped (\d+) of {asked} word-sequence clips longer than", words, re.M)  # and said so
    assert re.search(rf"^{clips + asked - (int(dropped[1]) if dropped else 0)} training clips", words, re.M), words
    assert f"{asked} word-sequence clips (swap share 1, jitter 0)" in words


def test_image_alignment_benchmark_aligns_each_seed_and_leaves_the_run_alone(upstream_run):
    """``benchmarks/image_alignment.py`` (docs/results.md quotes it: the choice of ``align_epochs``)
    aligns the run's image tower again, once per seed, with the run's 02 settings and ``--set``'s:
    one line per seed with the validation curve, the epoch kept and the test recall; the run's own
    tower is untouched (mutation: the seed not passed on → both lines equal)."""
    tower = upstream_run / "image_encoder"
    before = {p: p.read_bytes() for p in tower.rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "image_alignment.py"), "--run", str(upstream_run),
                           "--seeds", "0", "1", "--set", "align_epochs=2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("seed ")]
    curves = [re.search(r"^seed (\d): validation recall@1 by epoch (\S+ \S+); kept epoch [12] .*test recall@1 ", line)
              for line in lines]
    assert len(lines) == 2 and all(curves), done.stdout[-2000:]
    trained = [line.split(":", 1)[1].rsplit(";", 1)[0] for line in lines]  # all but the seconds
    assert [c.group(1) for c in curves] == ["0", "1"] and trained[0] != trained[1]
    assert {p: p.read_bytes() for p in tower.rglob("*") if p.is_file()} == before


def test_fuse_step_profile_reports_padding_phases_and_operators(upstream_run):
    """benchmarks/fuse_step_profile.py (docs/results.md's step-time and padding figures) on the tiny
    run: its padding share is that of the whole first epoch's batches, counted here from their
    masks, and each phase and part has a time. Mutation: the share counted over the timed steps'
    batches only fails here."""
    profile = benchmark("fuse_step_profile")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuse_step_profile.py"), "--run", str(upstream_run),
                           "--steps", "3", "--profile-steps", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    share = float(re.search(r"^padding: ([\d.]+)% of ([\d,]+) token positions", done.stdout, re.M).group(1))
    values = P.for_notebook("03_fuse", P.of_run(upstream_run))
    prepared = fused.prepare(upstream_run, values)
    masks = [prepared.collator([prepared.train_set[i] for i in chosen])["attention_mask"]
             for chosen in profile.epoch_batches(prepared.train_set, values["fuse_batch_images"], values["seed"])]
    real, positions = sum(int(m.sum()) for m in masks), sum(m.numel() for m in masks)
    assert share == round(100 * (1 - real / positions), 1)  # over every batch of the epoch
    timed = re.search(r"^per step, mean of 3: (.*)$", done.stdout, re.M).group(1)
    for name in ("collate", "forward", "vision_tower", "audio_tower", "language_model", "backward", "adamw"):
        assert re.search(rf"{name} [\d.]+ ms", timed), (name, timed)
    assert "aten::" in done.stdout  # the operator table

