"""Training throughput and MFU of the default-preset models: the GPT-2 LM, the ResNet image tower
(the default; ``--vit`` adds the ViT), the Whisper-style audio encoder and the fused model (all
three joined, a VQA batch), in fp32 and with bf16 autocast, on this machine's CPU.

MFU (model FLOPs utilisation, Chowdhery et al., 2022, "PaLM", appendix B) = achieved model
FLOP/s ÷ peak FLOP/s. Model FLOPs per trained token = 6·N + 12·L·T·d (N: parameters doing
matmuls per token, incl. the LM head; L layers, T sequence length, d width) for the LM, the ViT
and the Whisper encoder (its conv stem counted exactly); the ResNet's and the fused model's FLOPs
are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward and backward pass
(every matmul and convolution), as 03's report counts them. The peak is measured here, in the same process, as the best of
repeated 2048² matmuls in the same dtype, before and after the models run (the larger of the two,
so a noisy neighbour during one measurement does not inflate MFU).

    .venv/bin/python benchmarks/train_throughput.py [--steps 20] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from mbmlab.lab import params as P
from mbmlab.hardware import bf16_native, matmul_peak
from mbmlab.models import audio, text, vision


def matmul_params(model, exclude: tuple[str, ...]) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if p.dim() >= 2 and not any(e in name for e in exclude))


def lm_case(values, batch=64, length=32):
    class Vocab:  # new_language_model needs the vocabulary size and the special ids only
        bos_token_id, eos_token_id, pad_token_id = 0, 0, 1

        def __len__(self):
            return values["vocab_size"]

    model = text.new_language_model(Vocab(), values["lm_dim"], values["lm_layers"], values["lm_heads"], 0)
    ids = torch.randint(0, values["vocab_size"], (batch, length))
    n = matmul_params(model, ("wte", "wpe")) + values["vocab_size"] * values["lm_dim"]  # + the tied LM head
    flops = batch * length * (6 * n + 12 * values["lm_layers"] * length * values["lm_dim"])
    return "GPT-2 LM", model, lambda m: m(input_ids=ids, labels=ids).loss, batch * length, flops


def vit_case(values, batch=64):
    config = vision.vit_config(values["image_size"], values["patch_size"], values["vit_dim"],
                               values["vit_layers"], values["vit_heads"])
    model = vision.new_image_encoder(config, 0)
    pixels = torch.randn(batch, 3, values["image_size"], values["image_size"])
    tokens = (values["image_size"] // values["patch_size"]) ** 2 + 1
    n = matmul_params(model, ("position_embeddings", "cls_token"))
    flops = batch * tokens * (6 * n + 12 * values["vit_layers"] * tokens * values["vit_dim"])
    return "ViT image encoder", model, lambda m: m(pixel_values=pixels).last_hidden_state.pow(2).mean(), \
        batch * tokens, flops


def counted_flops(model, loss_fn) -> float:
    """FLOPs of one forward and backward pass, counted op by op."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_fn(model).backward()
    model.zero_grad()
    return float(counter.get_total_flops())


def resnet_case(values, batch=64):
    model = vision.new_image_encoder(vision.resnet_config(values["resnet_width"], values["resnet_depth"]), 0)
    pixels = torch.randn(batch, 3, values["image_size"], values["image_size"])
    loss_fn = lambda m: m(pixel_values=pixels).last_hidden_state.pow(2).mean()  # noqa: E731
    return "ResNet image tower", model, loss_fn, batch, counted_flops(model, loss_fn)


def fused_case(values, batch=32):
    """The fused model (LM, ResNet, Whisper encoder, connectors) on a batch of VQA rows: an image
    and a question, the loss on the answer; tokens: the rows' text tokens."""
    import numpy as np
    from PIL import Image

    from generate_throughput import build

    model, processor = build(values)
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(batch)]
    inputs = processor(text=[processor.prompt("vqa", "what color is the shape?") + " blue"] * batch, images=pictures)
    inputs["labels"] = inputs["input_ids"].clone()
    loss_fn = lambda m: m(**inputs).loss  # noqa: E731
    return "fused model (VQA batch)", model, loss_fn, int(inputs["attention_mask"].sum()), counted_flops(model, loss_fn)


def whisper_case(values, batch=32, seconds=5):
    model = audio.new_audio_encoder(seconds, values["audio_dim"], values["audio_layers"], values["audio_heads"], 0)
    frames = seconds * audio.FRAMES_PER_SECOND
    features = torch.randn(batch, audio.MEL_BINS, frames)
    tokens, d = frames // 2, values["audio_dim"]
    n = matmul_params(model, ("conv", "embed_positions"))
    stem = 2 * 3 * (audio.MEL_BINS * d * frames + d * d * tokens)  # conv1 (k3) over frames, conv2 (k3, stride 2)
    flops = batch * (tokens * (6 * n + 12 * values["audio_layers"] * tokens * d) + 3 * stem)
    return "Whisper-style audio encoder", model, \
        lambda m: m(input_features=features).last_hidden_state.pow(2).mean(), batch * tokens, flops


def steps_per_second(model, loss_fn, steps: int, bf16: bool) -> float:
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    context = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    for _ in range(2):  # warm-up
        with context():
            loss = loss_fn(model)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    start = time.perf_counter()
    for _ in range(steps):
        with context():
            loss = loss_fn(model)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmuls that measure the "
                        "peak (a smaller one for a quick check: bf16 without hardware support is very slow)")
    parser.add_argument("--vit", action="store_true", help="also the ViT image encoder (not the default tower)")
    args = parser.parse_args()
    values = P.resolve(args.preset)
    torch.manual_seed(0)
    peak = {"fp32": matmul_peak(torch.float32, args.peak_size), "bf16": matmul_peak(torch.bfloat16, args.peak_size)}
    results = []
    cases = (lm_case, resnet_case, *([vit_case] if args.vit else []), whisper_case, fused_case)
    for case in cases:
        name, model, loss_fn, tokens, flops = case(values)
        rates = {kind: statistics.median(steps_per_second(model, loss_fn, args.steps, kind == "bf16")
                                         for _ in range(args.repeats)) for kind in ("fp32", "bf16")}
        results.append((name, sum(p.numel() for p in model.parameters()), tokens, flops, rates))
    peak = {"fp32": max(peak["fp32"], matmul_peak(torch.float32, args.peak_size)),
            "bf16": max(peak["bf16"], matmul_peak(torch.bfloat16, args.peak_size))}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak ({args.peak_size}², best of 10, before "
          f"and after): fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s")
    print(f"{args.preset} preset, median of {args.repeats} × {args.steps} steps (forward, backward, AdamW)\n")
    print(f"{'model':<28} {'params':>9} {'tokens/step':>11} {'fp32 tok/s':>11} {'MFU':>6} "
          f"{'bf16 tok/s':>11} {'MFU':>6} {'bf16/fp32':>9}")
    native = bf16_native()
    for name, params, tokens, flops, rates in results:
        # without bf16 hardware the bf16 "peak" is emulation speed at one matmul size, not a ceiling:
        # small matmuls can beat it, so a ratio to it means nothing (it read >100% here)
        bf16_mfu = f"{rates['bf16'] * flops / peak['bf16']:>6.1%}" if native else f"{'n/a':>6}"
        print(f"{name:<28} {params:>9,} {tokens:>11,} {rates['fp32'] * tokens:>11,.0f} "
              f"{rates['fp32'] * flops / peak['fp32']:>6.1%} {rates['bf16'] * tokens:>11,.0f} "
              f"{bf16_mfu} {rates['bf16'] / rates['fp32']:>8.2f}×")
    if not native:
        print("\nbf16 MFU n/a: this CPU has no AMX or AVX512-BF16 (mbmlab.hardware.bf16_native), so bf16 is emulated "
              "and has no hardware peak to divide by")


if __name__ == "__main__":
    main()
