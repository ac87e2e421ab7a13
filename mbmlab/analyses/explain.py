"""Explanation maps (notebook 04_evaluate): where the fused model looked when it produced a token.

For one generated token, from the decoder position that predicted it:

- **attention**: each layer's attention weights (heads averaged) over the input positions;
- **attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
  eq. 1): with the residual connection folded in, Ã_l = ½·A_l + ½·I, rows renormalised, and
  R = Ã_L · … · Ã_1; the predicting position's row of R says how much of what it read comes
  from each input position, through every layer;
- **saliency** (Simonyan, Vedaldi & Zisserman 2014): |∂ log p(token) / ∂ pixel|, the largest over
  the colour channels — the image map when the image's decoder positions are not a spatial grid
  (the default ``pooled`` connector gives a few tokens that each mix the whole image).

Image maps: rollout over the image positions laid out on their grid (``patches`` connector,
``early`` fusion), otherwise saliency. Audio map: rollout over the audio positions, which are
in time order (each covers a fixed stretch of the clip's log-mel frames).

Sanity checks (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): on single-object images
the map's mass on the object (``object_share``) should exceed the object's share of the area;
and the maps of the same architecture with re-initialised weights (``randomised``) should differ
from the trained model's (``rank_correlation`` near 0). Cross-attention fusion reads media
inside its gated blocks, not through decoder positions; it is refused with that reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Explanation:
    text: str  # the generated text
    token: str  # the explained token
    attention: np.ndarray  # (layers, positions): the predicting position's attention, heads averaged
    rollout: np.ndarray  # (positions,)
    image_positions: np.ndarray  # indices of the image's decoder positions
    audio_positions: np.ndarray
    image_map: np.ndarray | None  # (H, W) over the model's input pixels, sums to 1
    image_map_kind: str  # "rollout" (grid positions) or "saliency"
    audio_map: np.ndarray | None  # (audio positions,), sums to 1
    generated: list[int] | None = None  # the token ids after the prompt (generated, or the continuation given)

    def shares(self) -> dict[str, float]:
        """How the rollout of the predicting position splits between image, audio and text."""
        image, audio = float(self.rollout[self.image_positions].sum()), float(self.rollout[self.audio_positions].sum())
        return {"image": image, "audio": audio, "text": float(self.rollout.sum()) - image - audio}


def rollout(attentions: torch.Tensor) -> torch.Tensor:
    """Attention rollout of (layers, heads, seq, seq) weights → (seq, seq): Abnar & Zuidema's
    Ã = ½A + ½I per layer (heads averaged), rows renormalised, multiplied from the first layer up."""
    mixed = attentions.float().mean(1)
    eye = torch.eye(mixed.shape[-1])
    result = eye
    for layer in mixed:
        a = 0.5 * layer + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result


def image_grid(config) -> tuple[int, int] | None:
    """(rows, columns) of the image's decoder positions when they are patches, else None."""
    if config.fusion == "early":
        side = config.image_size // config.early_patch_size
        return side, side
    if config.fusion == "prefix" and config.image_connector == "patches":
        side = int(round(config.image_seq_length ** 0.5))
        return (side, side) if side * side == config.image_seq_length else None
    return None


def _grid_to_pixels(weights: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    cells = weights.reshape(grid)
    return np.kron(cells, np.ones((size // grid[0], size // grid[1]))) / (size // grid[0] * size // grid[1])


def explain(model, processor, image=None, audio=None, question: str = "", token_index: int = 0,
            max_new_tokens: int = 8, continuation: list[int] | None = None) -> Explanation:
    """Generate greedily, then explain generated token ``token_index`` (0: the first).
    ``continuation``: explain these token ids after the prompt instead of the model's own (the
    sanity check asks a randomised model about the trained model's answer)."""
    from ..metrics.generate import task_for

    if model.config.fusion == "cross_attention":
        raise ValueError("cross-attention fusion reads images and clips inside its gated blocks, not through "
                         "decoder positions, so attention to media positions does not exist; explain a prefix "
                         "or early fusion model")
    task = task_for(image is not None, audio is not None, bool(question))
    inputs = processor(text=processor.prompt(task, question), images=[image] if image is not None else None,
                       audio=[audio] if audio is not None else None)
    tokenizer = processor.tokenizer
    model.eval()
    if continuation is None:
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    else:
        generated = torch.cat([inputs["input_ids"], torch.tensor([list(continuation)])], dim=1)
    width = inputs["input_ids"].shape[1]
    new = generated[0, width:]
    if token_index >= len(new):
        raise ValueError(f"the model generated {len(new)} tokens; token_index {token_index} is out of range")
    ids = generated[:, :width + token_index + 1]
    predictor, token_id = width + token_index - 1, int(ids[0, -1])
    pixel_values = inputs.get("pixel_values")
    if pixel_values is not None:
        pixel_values = pixel_values.clone().requires_grad_(True)
    lm = model.model.language_model
    previous = lm.config._attn_implementation
    lm.set_attn_implementation("eager")  # SDPA does not return its weights
    try:
        out = model(input_ids=ids, pixel_values=pixel_values, input_features=inputs.get("input_features"),
                    attention_mask=torch.ones_like(ids), output_attentions=True, use_cache=False)
    finally:
        lm.set_attn_implementation(previous)
    attentions = torch.stack([a[0] for a in out.attentions]).detach()  # (layers, heads, seq, seq)
    flow = rollout(attentions)[predictor].numpy()
    per_layer = attentions[:, :, predictor].float().mean(1).numpy()
    image_positions = (ids[0] == model.config.image_token_id).nonzero().flatten().numpy()
    audio_positions = (ids[0] == model.config.audio_token_id).nonzero().flatten().numpy()
    image_map, kind = None, ""
    if pixel_values is not None:
        grid = image_grid(model.config)
        size = pixel_values.shape[-1]
        if grid is not None:
            weights = flow[image_positions]
            image_map, kind = _grid_to_pixels(weights / max(weights.sum(), 1e-12), grid, size), "rollout"
        else:
            torch.log_softmax(out.logits[0, predictor].float(), -1)[token_id].backward()
            saliency = pixel_values.grad[0].abs().amax(0).numpy()
            image_map, kind = saliency / max(saliency.sum(), 1e-12), "saliency"
    audio_map = None
    if len(audio_positions):
        weights = flow[audio_positions]
        audio_map = weights / max(weights.sum(), 1e-12)
    return Explanation(tokenizer.decode(new, skip_special_tokens=True).strip(), tokenizer.decode([token_id]),
                       per_layer, flow, image_positions, audio_positions, image_map, kind, audio_map,
                       new.tolist())


# ---------------------------------------------------------------- sanity checks

def object_mask(image, size: int, tolerance: float = 40.0) -> np.ndarray:
    """Pixels of a single-object image (resized to ``size``) that differ from its background,
    the colour of the top-left corner, by more than ``tolerance`` (RGB distance)."""
    pixels = np.asarray(image.convert("RGB").resize((size, size)), dtype=float)
    return np.linalg.norm(pixels - pixels[0, 0], axis=-1) > tolerance


def object_share(image_map: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's mass on the object."""
    return float(image_map[mask].sum() / max(image_map.sum(), 1e-12))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (Adebayo et al.'s similarity measure): the Pearson
    correlation of their ranks, ties given their average rank."""
    import pandas as pd

    ranks = [pd.Series(np.ravel(m)).rank().to_numpy() for m in (a, b)]
    if ranks[0].std() == 0 or ranks[1].std() == 0:
        return 0.0
    return float(np.corrcoef(*ranks)[0, 1])


def randomised(model, seed: int = 0):
    """The same architecture with every weight re-initialised (Adebayo et al.'s model randomisation)."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    return AutoModelForImageTextToText.from_config(model.config).eval()


def sanity(model, processor, examples, images, n_images: int, seed: int = 0):
    """Per explanation on up to ``n_images`` single-object test images (non-empty ``colour`` and
    ``shape`` columns), for the first colour and the first shape question of each: the map's share
    on the object for the trained model and for ``randomised(model)`` explaining the *same* token —
    the trained model's answer (Adebayo et al. 2018, §3: the randomisation test compares maps of one
    output) — the object's share of the area (what a uniform map would give) and the rank
    correlation of the two maps."""
    import pandas as pd

    noise = randomised(model, seed)
    single = [i for i, (c, s) in enumerate(zip(images["colour"], images["shape"])) if c and s][:n_images]
    first = {}
    for e in examples:
        if e.task == "vqa" and e.image in single and e.question_type in ("colour", "shape"):
            first.setdefault((e.image, e.question_type), e)
    rows = []
    for (i, kind), example in sorted(first.items()):
        picture = images[i]["image"]
        trained = explain(model, processor, image=picture, question=example.question)
        floor = explain(noise, processor, image=picture, question=example.question, continuation=trained.generated)
        mask = object_mask(picture, trained.image_map.shape[0])
        rows.append({"image": i, "question_type": kind, "question": example.question, "answer": example.target,
                     "prediction": trained.text, "token": trained.token,
                     "object_share": object_share(trained.image_map, mask),
                     "object_share_randomised": object_share(floor.image_map, mask),
                     "object_area": float(mask.mean()),
                     "rank_correlation": rank_correlation(trained.image_map, floor.image_map)})
    return pd.DataFrame(rows)


def sanity_metrics(frame, seed: int = 0) -> dict[str, float]:
    """Means of ``sanity``'s columns as ``explain/…`` metrics, each with its interval (images
    resampled: an image's colour and shape explanations together), and the verdict stated before
    any run: the maps pass (``explain/sanity_passed`` 1) when the interval of the trained model's
    object share lies above the object's share of the area (better than a uniform map) *and* the
    interval of the paired difference trained − randomised lies above 0 (the maps depend on what
    the model learned)."""
    from ..metrics.bootstrap import with_interval
    from ..metrics.stats import mean_interval

    if not len(frame):
        return {}
    out = {}
    images = frame["image"].to_numpy()
    columns = {"explain/object_share": frame["object_share"],
               "explain/object_share/randomised": frame["object_share_randomised"],
               "explain/object_area": frame["object_area"],
               "explain/rank_correlation/randomised": frame["rank_correlation"],
               "explain/object_share/minus_randomised": frame["object_share"] - frame["object_share_randomised"],
               "explain/object_share/minus_area": frame["object_share"] - frame["object_area"]}
    for name, values in columns.items():
        mean, low, high = mean_interval(values.to_numpy(dtype=float), clusters=images, seed=seed)
        out |= with_interval(name, mean, (low, high))
    out["explain/sanity_passed"] = float(out["explain/object_share/minus_area/ci95_low"] > 0
                                         and out["explain/object_share/minus_randomised/ci95_low"] > 0)
    return out


# ---------------------------------------------------------------- figures

def smoothed(image_map: np.ndarray, block: int = 4) -> np.ndarray:
    """Block means of a pixel map (saliency is speckled pixel by pixel); same shape."""
    h, w = image_map.shape
    if h % block or w % block:
        return image_map
    means = image_map.reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    return np.kron(means, np.ones((block, block)))


def plot_image_map(ax, image, explanation: Explanation, title: str = "") -> None:
    """The image, and over it the map (saliency in 4×4-pixel block means), scaled to its maximum."""
    size = explanation.image_map.shape[0]
    shown = smoothed(explanation.image_map) if explanation.image_map_kind == "saliency" else explanation.image_map
    ax.imshow(np.asarray(image.convert("RGB").resize((size, size))))
    ax.imshow(shown / max(shown.max(), 1e-12), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
    ax.set_title(title or f"{explanation.image_map_kind} for {explanation.token!r}", fontsize=8)
    ax.axis("off")


def plot_audio_map(ax, log_mel: np.ndarray, explanation: Explanation, title: str = "") -> None:
    """The rollout over the audio positions stretched over the spectrogram's time axis."""
    ax.imshow(log_mel, origin="lower", aspect="auto", cmap="magma")
    frames = log_mel.shape[-1]
    weights = explanation.audio_map
    edges = np.linspace(0, frames, len(weights) + 1)
    twin = ax.twinx()
    twin.stairs(weights, edges, color="cyan", lw=1.5)
    twin.set_ylim(0, max(weights.max() * 1.1, 1e-6))
    twin.set_yticks([])
    ax.set_xlim(0, frames)
    ax.set_title(title or f"audio rollout for {explanation.token!r}", fontsize=8)
    ax.set_xlabel("log-mel frame")
    ax.set_yticks([])


def skip_reason(model, has_vqa: bool, n_images: int) -> str | None:
    """Why 04 draws no explanation maps (None: it draws them)."""
    if not has_vqa:
        return "no VQA test data"
    if not n_images:
        return "explain_images = 0"
    if model.config.fusion == "cross_attention":
        return "cross-attention fusion reads media inside its gated blocks, not through decoder positions"
    return None


def sanity_summary(checks, metrics: dict) -> list[str]:
    """04's printed lines for the sanity check: per question type the shares, then the headline."""
    if not len(checks):
        return ["no single-object test images: the sanity check needs images with one object"]
    table = checks.groupby("question_type")[["object_share", "object_share_randomised", "object_area",
                                             "rank_correlation"]].mean().round(4).to_string()
    m = metrics
    return [f"{len(checks)} explanations on {checks['image'].nunique()} single-object test images:", table,
            f"share of the map on the object: {m['explain/object_share']:.4f} "
            f"[{m['explain/object_share/ci95_low']:.4f}, {m['explain/object_share/ci95_high']:.4f}]; "
            f"randomised model (explaining the same answers) {m['explain/object_share/randomised']:.4f}; "
            f"the object's share of the area {m['explain/object_area']:.4f}",
            f"trained − randomised {m['explain/object_share/minus_randomised']:+.4f} "
            f"[{m['explain/object_share/minus_randomised/ci95_low']:+.4f}, "
            f"{m['explain/object_share/minus_randomised/ci95_high']:+.4f}]; trained − area "
            f"{m['explain/object_share/minus_area']:+.4f} [{m['explain/object_share/minus_area/ci95_low']:+.4f}, "
            f"{m['explain/object_share/minus_area/ci95_high']:+.4f}]; rank correlation of the two maps "
            f"{m['explain/rank_correlation/randomised']:.3f}",
            "sanity check (both intervals above 0, set before any run): "
            + ("passed" if m["explain/sanity_passed"] else "NOT passed — the maps are not shown to depend on what "
               "the model learned and on where the object is")]


def plot_examples(model, processor, checks, images, seed: int = 0, n: int = 4):
    """The first ``n`` explained images: the trained model's map over each (top row) and the
    randomised model's (bottom row), titled with the question and the answer."""
    import matplotlib.pyplot as plt

    shown = checks.drop_duplicates("image").head(n)
    fig, axes = plt.subplots(2, len(shown), figsize=(2.4 * len(shown), 5.2), squeeze=False)
    noise = randomised(model, seed)
    for k, row in enumerate(shown.itertuples()):
        picture = images[row.image]["image"]
        for r, (who, m) in enumerate((("trained", model), ("randomised", noise))):
            e = explain(m, processor, image=picture, question=row.question)
            plot_image_map(axes[r, k], picture, e, f"{who}: {row.question}\n→ {e.text!r}")
    fig.tight_layout()
    return fig


def plot_spoken_example(model, processor, picture, clip, log_mel: np.ndarray):
    """A spoken question about ``picture``: the image map beside the audio rollout over the
    clip's log-mel spectrogram ``log_mel``, titled with the rollout's shares per input."""
    import matplotlib.pyplot as plt

    samples = clip["audio"].get_all_samples().data.mean(0).numpy()
    e = explain(model, processor, image=picture, audio=samples)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), gridspec_kw={"width_ratios": [1, 3]})
    plot_image_map(axes[0], picture, e, f"{e.image_map_kind} for {e.token!r}")
    plot_audio_map(axes[1], log_mel, e, f"spoken {clip['transcript']!r} → {e.text!r}; rollout shares " +
                   ", ".join(f"{k} {v:.2f}" for k, v in e.shares().items()))
    fig.tight_layout()
    return fig
