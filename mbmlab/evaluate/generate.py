"""Batched generation with the fused model for any task: prompts built by the processor,
left-padded, greedy or beam, KV cache on; each batch holds one task."""
from __future__ import annotations

import torch
from tqdm import tqdm  # text bars: readable in JupyterLab and in the rendered HTML

from ..models.processing_mbm import TASKS, pad


@torch.no_grad()
def generate(model, processor, examples, pixel_values: torch.Tensor | None = None,
             input_features: torch.Tensor | None = None, *, batch_size: int = 256,
             max_new_tokens: int | dict[str, int] = 8, num_beams: int = 1, use_cache: bool = True,
             progress: bool = True, desc: str = "generating") -> list[str]:
    """The model's text for each example (``mbmlab.data.tasks.Example``), in order, stripped.

    ``pixel_values`` / ``input_features`` hold the split's images / clips; an example's ``image``
    and ``clip`` are rows of them. ``max_new_tokens`` may be given per task.
    """
    model.eval()
    outputs: list[str | None] = [None] * len(examples)
    by_task: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_task.setdefault(ex.task, []).append(i)
    tokenizer = processor.tokenizer
    for task, indices in by_task.items():
        needs = TASKS[task]
        if "image" in needs and pixel_values is None or "audio" in needs and input_features is None:
            raise ValueError(f"{task} examples need {' and '.join(needs)} inputs")
        limit = max_new_tokens[task] if isinstance(max_new_tokens, dict) else max_new_tokens
        prompt_ids = processor.prompt_ids([processor.prompt(task, examples[i].question if task == "vqa" else "")
                                           for i in indices])
        starts = range(0, len(indices), batch_size)
        for start in tqdm(starts, desc=f"{desc} {task}", disable=not progress):
            chunk = indices[start:start + batch_size]
            batch = pad(prompt_ids[start:start + batch_size], tokenizer.pad_token_id, side="left")
            if "image" in needs:
                batch["pixel_values"] = pixel_values[[examples[i].image for i in chunk]]
            if "audio" in needs:
                batch["input_features"] = input_features[[examples[i].clip for i in chunk]]
            width = batch["input_ids"].shape[1]
            generated = model.generate(**batch, max_new_tokens=limit, num_beams=num_beams, do_sample=False,
                                       use_cache=use_cache, pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            for i, text in zip(chunk, texts, strict=True):
                outputs[i] = text.strip()
    return outputs


def max_target_tokens(processor, targets: list[str]) -> int:
    """New tokens enough for the longest of ``targets`` and its end-of-text token."""
    if not targets:
        return 1
    return max(len(ids) for ids in processor.target_ids(targets))
