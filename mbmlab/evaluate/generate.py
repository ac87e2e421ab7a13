"""Batched generation with the fused model: left-padded prompts, greedy or beam, KV cache on."""
from __future__ import annotations

import torch
from tqdm import tqdm  # text bars: readable in JupyterLab and in the rendered HTML


@torch.no_grad()
def generate(model, tokenizer, pixel_values: torch.Tensor, image_rows: list[int], prompts: list[str], *,
             batch_size: int = 256, max_new_tokens: int = 8, num_beams: int = 1, use_cache: bool = True,
             progress: bool = True, desc: str = "generating") -> list[str]:
    """The model's text continuation of each ``<image> prompt``, stripped.

    ``image_rows[i]`` is the row of ``pixel_values`` that prompt ``i`` is about.
    """
    if len(image_rows) != len(prompts):
        raise ValueError(f"{len(image_rows)} image rows for {len(prompts)} prompts")
    model.eval()
    image = [model.config.image_token_id] * model.config.num_image_tokens
    pad = tokenizer.pad_token_id
    prompt_ids = tokenizer(prompts)["input_ids"]
    outputs: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, disable=not progress):
        rows = [image + ids for ids in prompt_ids[start:start + batch_size]]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        generated = model.generate(
            input_ids=input_ids, attention_mask=attention_mask,
            pixel_values=pixel_values[image_rows[start:start + batch_size]],
            max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, use_cache=use_cache,
            pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        )
        new_tokens = generated[:, width:]
        outputs += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return outputs
