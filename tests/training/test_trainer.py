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
    return training_arguments(output_dir, epochs=2, batch_size=8, learning_rate=3e-3, seed=0, n_examples=100,
                              **settings)


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


def test_bf16_autocast_trains_on_cpu(tokenizer, tmp_path):
    from conftest import LINES
    from mbmlab.models import text
    from mbmlab.training.trainer import LMCollator, TextLines, train

    trainer = train(text.new_language_model(tokenizer, 32, 1, 2, seed=0),
                    lm_trainer_args(tmp_path, bf16=True, max_steps=4, save_strategy="no"),
                    TextLines(LINES, tokenizer), LMCollator(tokenizer.pad_token_id))
    assert trainer.args.bf16 and trainer.state.global_step == 4
    assert next(trainer.model.parameters()).dtype == torch.float32  # autocast: weights stay fp32
