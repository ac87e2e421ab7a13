import pytest
import torch

from mbmlab.training.trainer import IGNORE_INDEX, LMCollator, TextLines


def test_lm_collator_pads_and_masks(tokenizer):
    data = TextLines(["caption: a red circle", "caption: a blue rectangle is here"], tokenizer)
    batch = LMCollator(tokenizer.pad_token_id)([data[0], data[1]])
    short = len(data[0]["input_ids"])
    assert batch["input_ids"][0, short - 1] == tokenizer.eos_token_id
    assert (batch["attention_mask"][0, short:] == 0).all()
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert torch.equal(batch["labels"][1], batch["input_ids"][1])


def lm_trainer_args(output_dir, **extra):
    from mbmlab.training.trainer import training_arguments
    settings = dict(save_strategy="steps", save_steps=5, disable_tqdm=True) | extra
    settings = dict(learning_rate=3e-3) | settings
    return training_arguments(output_dir, epochs=2, batch_size=8, seed=0, n_examples=100, **settings)


def test_resuming_an_interrupted_run_gives_the_same_weights(tokenizer, tmp_path):
    """Stop after 7 of 30 steps (a checkpoint is written there), resume in a fresh model: the final
    weights equal those of an uninterrupted run, bit for bit (dropout on, so RNG state matters too)."""
    from conftest import LINES
    from mbmlab.models import text
    from mbmlab.training.trainer import LMCollator, StopAfter, TextLines, train

    data, collate = TextLines(LINES, tokenizer), LMCollator(tokenizer.pad_token_id)
    fresh = lambda seed: text.new_language_model(tokenizer, dim=32, layers=2, heads=2, seed=seed)  # noqa: E731
    whole = train(fresh(0), lm_trainer_args(tmp_path / "whole"), data, collate)
    stopped = train(fresh(0), lm_trainer_args(tmp_path / "split"), data, collate, callbacks=[StopAfter(7)])
    assert stopped.state.global_step == 7 and (tmp_path / "split" / "checkpoint-7").is_dir()
    resumed = train(fresh(123), lm_trainer_args(tmp_path / "split"), data, collate, resume=True)
    assert resumed.state.global_step == whole.state.global_step == 30  # 2 epochs × ⌈120 lines / 8⌉
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    # and the interruption mattered: a model that only saw 7 steps is different
    assert not torch.equal(stopped.model.transformer.wte.weight, whole.model.transformer.wte.weight)


def test_a_resumed_training_uses_the_learning_rate_given_now(tokenizer, tmp_path):
    """Stopped at step 7 with 3e-3, resumed with 1e-3: every later step's rate is the one an
    uninterrupted 1e-3 training has there. Mutation: without LearningRateGivenNow the checkpoint's
    scheduler keeps 3e-3's schedule and this fails."""
    from transformers import TrainerCallback

    from conftest import LINES
    from mbmlab.models import text
    from mbmlab.training.trainer import LMCollator, StopAfter, TextLines, train

    class Rates(TrainerCallback):
        def __init__(self):
            self.seen = {}

        def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
            self.seen[state.global_step] = optimizer.param_groups[0]["lr"]

    data, collate = TextLines(LINES, tokenizer), LMCollator(tokenizer.pad_token_id)
    model = lambda: text.new_language_model(tokenizer, dim=32, layers=2, heads=2, seed=0)  # noqa: E731
    low, resumed = Rates(), Rates()
    train(model(), lm_trainer_args(tmp_path / "low", learning_rate=1e-3), data, collate, callbacks=[low])
    train(model(), lm_trainer_args(tmp_path / "split"), data, collate, callbacks=[StopAfter(7)])
    train(model(), lm_trainer_args(tmp_path / "split", learning_rate=1e-3), data, collate, resume=True,
          callbacks=[resumed])
    assert sorted(resumed.seen) == list(range(7, 30))
    assert all(abs(resumed.seen[step] - low.seen[step]) < 1e-12 for step in resumed.seen)


def test_bf16_autocast_trains_on_cpu(tokenizer, tmp_path):
    from conftest import LINES
    from mbmlab.models import text
    from mbmlab.training.trainer import LMCollator, TextLines, train

    trainer = train(text.new_language_model(tokenizer, 32, 1, 2, seed=0),
                    lm_trainer_args(tmp_path, bf16=True, max_steps=4, save_strategy="no"),
                    TextLines(LINES, tokenizer), LMCollator(tokenizer.pad_token_id))
    assert trainer.args.bf16 and trainer.state.global_step == 4
    assert next(trainer.model.parameters()).dtype == torch.float32  # autocast: weights stay fp32


def test_a_nan_in_a_batch_stops_training_naming_stage_step_and_batch(tmp_path):
    """Eight one-number items, batches of 2 in order; item 5 is NaN, so the third batch's loss is
    NaN: training stops at optimiser step 3 (batch 3 of 4) before that step changes a weight.
    Mutation: training_step without the finiteness check trains on (NaN weights) and fails here."""
    import pytest

    from mbmlab.training.trainer import NonFiniteLoss, train, training_arguments

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 1)

        def forward(self, x, y):
            return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)}

    xs = [1.0, 2.0, 3.0, 4.0, float("nan"), 6.0, 7.0, 8.0]
    items = [{"x": torch.tensor([x]), "y": torch.tensor(2 * x if x == x else 0.0)} for x in xs]
    collate = lambda batch: {k: torch.stack([b[k] for b in batch]) for k in batch[0]}  # noqa: E731
    model = Regression()
    args = training_arguments(tmp_path / "stage2", epochs=1, batch_size=2, learning_rate=1e-2, seed=0, n_examples=8,
                              disable_tqdm=True, remove_unused_columns=False)
    args.train_sampling_strategy = "sequential"
    with pytest.raises(NonFiniteLoss, match=r"stage 'stage2' at optimiser step 3 \(epoch 1, batch 3 of 4\)") as info:
        train(model, args, items, collate)
    assert "x (2, 1) with 1 non-finite values" in str(info.value) and "--resume" in str(info.value)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step was never applied


def test_a_training_records_its_throughput_with_flops_counted(tmp_path, monkeypatch):
    """A bias-free Linear(8 → 4) on batches of 16: forward 2·16·8·4 = 1,024 FLOPs, backward only
    the weight's gradient (the input needs none), 1,024 more: 2,048 per pass, 12 passes (3 epochs
    of 64 items). FLOPs are counted on ``FLOP_SAMPLES`` passes at least ``FLOP_SAMPLE_GAP`` apart
    (4 and 1 here: passes 2, 5, 8, 11) and scaled to all. Mutation: summing the sampled passes
    without scaling gives 8,192 and fails here."""
    import json

    from mbmlab.training.trainer import LengthAwareTrainer, train, training_arguments

    monkeypatch.setattr(LengthAwareTrainer, "FLOP_SAMPLES", 4)
    monkeypatch.setattr(LengthAwareTrainer, "FLOP_SAMPLE_GAP", 1)

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 4, bias=False)

        def forward(self, x, attention_mask):
            return {"loss": self.linear(x).pow(2).mean()}

    items = [{"x": torch.randn(8), "attention_mask": torch.ones(5, dtype=torch.long)} for _ in range(64)]
    collate = lambda batch: {k: torch.stack([b[k] for b in batch]) for k in batch[0]}  # noqa: E731
    args = training_arguments(tmp_path / "probe", epochs=3, batch_size=16, learning_rate=1e-2, seed=0, n_examples=64,
                              disable_tqdm=True)
    train(Probe(), args, items, collate)
    record = json.loads((tmp_path / "probe" / "throughput.json").read_text())
    assert record["passes"] == 12 and record["flops_sampled_passes"] == 4
    assert record["flops"] == 2048 * 12
    assert record["tokens_per_second"] == pytest.approx(12 * 16 * 5 / record["seconds"])
    assert record["items_per_second"] == pytest.approx(12 * 16 / record["seconds"])
    # the Trainer's curve also went to TensorBoard event files beside the checkpoints
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = {p.parent for p in (tmp_path / "probe").rglob("events.out.tfevents.*")}
    curve = EventAccumulator(str(events)).Reload().Scalars("train/loss")
    assert len(curve) >= 2 and curve[-1].step > curve[0].step


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt"])
def test_resuming_from_a_damaged_checkpoint_names_the_file(tokenizer, tmp_path, damaged):
    """A checkpoint cut short is refused before the Trainer reads it, naming the file. Mutation:
    check_checkpoint not called → the Trainer's own SafetensorError / unpickling error, and this fails."""
    from conftest import LINES
    from mbmlab.artifacts import CorruptArtifactError
    from mbmlab.models import text
    from mbmlab.training.trainer import LMCollator, StopAfter, TextLines, train

    data, collate = TextLines(LINES, tokenizer), LMCollator(tokenizer.pad_token_id)
    model = lambda: text.new_language_model(tokenizer, dim=32, layers=2, heads=2, seed=0)  # noqa: E731
    train(model(), lm_trainer_args(tmp_path / "run"), data, collate, callbacks=[StopAfter(3)])
    path = tmp_path / "run" / "checkpoint-3" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptArtifactError, match=f"checkpoint-3/{damaged} cannot be read"):
        train(model(), lm_trainer_args(tmp_path / "run"), data, collate, resume=True)


def test_pretraining_refuses_lines_longer_than_the_positions(tokenizer, tmp_path):
    """A line past the LM's positions is a clear error before training, not an IndexError from
    the position embedding (a Chinese translation in a byte-level BPE with few merges is ~3 tokens
    a character). The default GPT-2 has 128 positions."""
    from conftest import LINES
    from mbmlab.models import text
    from mbmlab.training.language_model import pretrain

    assert text.new_language_model(tokenizer, 32, 1, 2, seed=0).config.max_position_embeddings == 128
    lm = text.new_language_model(tokenizer, 32, 1, 2, seed=0)
    lm.config.max_position_embeddings = 16
    long_line = "translate to zh: a small red circle " + "一个小的红色圆形" * 4
    with pytest.raises(ValueError, match=r"the longest text line takes \d+ tokens but the language model has 16"):
        pretrain(lm, tokenizer, LINES + [long_line], LINES, tmp_path, epochs=1, batch_size=4, learning_rate=1e-3, seed=0)
