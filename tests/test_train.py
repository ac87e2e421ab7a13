import torch

from mbmlab.train import IGNORE_INDEX, FusionCollator, ImageTasks, LMCollator, TextLines, image_tasks


RECORD = {"questions": ["what color is the shape?", "is there a red shape?"], "answers": ["blue", "no"],
          "caption": "a blue circle"}


def test_image_tasks_make_one_pair_per_question_and_caption():
    pairs = image_tasks(RECORD)
    assert pairs == [("question: what color is the shape? answer:", " blue"),
                     ("question: is there a red shape? answer:", " no"), ("caption:", " a blue circle")]
    assert image_tasks(dict(RECORD, caption="")) == pairs[:2]
    assert image_tasks(RECORD, tasks=("caption",)) == pairs[2:]


def test_fusion_collator_puts_loss_only_on_targets(tokenizer, pixels):
    class Split(list):
        def select_columns(self, _):
            return self
    dataset = ImageTasks(Split([RECORD, dict(RECORD, caption="")]), pixels, tokenizer)
    collate = FusionCollator(pixels, image_token_id=2, num_image_tokens=4, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    batch = collate([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == 5  # 3 rows for image 0, 2 for image 1
    assert batch["image_index"].tolist() == [0, 0, 0, 1, 1]
    assert batch["pixel_values"].shape[0] == 2
    for row in range(5):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        assert (ids[:4] == 2).all() and (labels[:4] == IGNORE_INDEX).all()  # image slots carry no loss
        supervised = labels[labels != IGNORE_INDEX].tolist()
        assert supervised[-1] == tokenizer.eos_token_id
        target = tokenizer.decode(supervised[:-1])
        assert target in (" blue", " no", " a blue circle")
        assert (labels[mask == 0] == IGNORE_INDEX).all()  # padding carries no loss


def test_lm_collator_pads_and_masks(tokenizer):
    data = TextLines(["caption: a red circle", "caption: a blue rectangle is here"], tokenizer)
    batch = LMCollator(tokenizer.pad_token_id)([data[0], data[1]])
    short = len(data[0]["input_ids"])
    assert batch["input_ids"][0, short - 1] == tokenizer.eos_token_id
    assert (batch["attention_mask"][0, short:] == 0).all()
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert torch.equal(batch["labels"][1], batch["input_ids"][1])
