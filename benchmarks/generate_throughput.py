"""Generation speed of the fused model: new tokens per second with and without the KV cache,
and a batch against one example at a time, measured in one run on this machine's CPU.

The model has the default preset's sizes (GPT-2 LM, ResNet image tower, Whisper-style audio
encoder, random weights: speed does not depend on what was learned); every example generates
exactly ``--new-tokens`` tokens (``min_new_tokens``), so all settings do the same work. Times are
medians over ``--repeats``.

    .venv/bin/python benchmarks/generate_throughput.py [--batch 64] [--new-tokens 24] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from mbmlab.lab import params as P
from mbmlab.models import MbmConfig, MbmForConditionalGeneration, MbmProcessor, audio, text, vision


def build(values: dict):
    words = ["question: what color is the shape? answer: blue", "caption: a red circle", "transcribe: hello"] * 50
    tokenizer = text.train_tokenizer(words, 300)
    torch.manual_seed(0)
    config = MbmConfig(text_config=text.gpt2_config(tokenizer, values["lm_dim"], values["lm_layers"],
                                                    values["lm_heads"], max_positions=256),
                       vision_config=vision.resnet_config(values["resnet_width"], values["resnet_depth"]),
                       audio_config=audio.whisper_config(3, values["audio_dim"], values["audio_layers"],
                                                         values["audio_heads"]),
                       image_size=values["image_size"], image_pixel_shuffle=values["pixel_shuffle"],
                       audio_frame_pool=values["audio_frame_pool"],
                       image_token_id=text.token_id(tokenizer, text.IMAGE),
                       audio_token_id=text.token_id(tokenizer, text.AUDIO))
    model = MbmForConditionalGeneration(config).eval()
    processor = MbmProcessor(vision.image_processor(values["image_size"]), audio.feature_extractor(3), tokenizer,
                             config.image_seq_length, config.audio_seq_length)
    return model, processor


def timed(model, inputs: dict, new_tokens: int, use_cache: bool, repeats: int) -> float:
    pad = model.config.pad_token_id
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           use_cache=use_cache, pad_token_id=pad, eos_token_id=model.config.eos_token_id)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model, processor = build(P.resolve(args.preset))
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(args.batch)]
    prompts = [processor.prompt("vqa", "what color is the shape?")] * args.batch
    batch = processor(text=prompts, images=pictures)
    one = processor(text=prompts[:1], images=pictures[:1])
    tokens = args.batch * args.new_tokens
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
          f"{args.new_tokens} new tokens each, prompt {batch['input_ids'].shape[1]} tokens; median of {args.repeats}")
    rows = {}
    rows["batch, KV cache"] = tokens / timed(model, batch, args.new_tokens, True, args.repeats)
    rows["batch, no cache"] = tokens / timed(model, batch, args.new_tokens, False, args.repeats)
    single = timed(model, one, args.new_tokens, True, args.repeats)
    rows["one at a time, KV cache"] = args.new_tokens / single
    for name, rate in rows.items():
        print(f"{name:26} {rate:10,.0f} new tokens/s")
    print(f"batched vs one at a time: {rows['batch, KV cache'] / rows['one at a time, KV cache']:.1f}×")
    print(f"kv-cache speed-up: {rows['batch, KV cache'] / rows['batch, no cache']:.1f}×")


if __name__ == "__main__":
    main()
