"""What joins an encoder to the GPT: token reducers (pixel shuffle for image patches, frame
pooling for audio frames) and the projector registry, named as in LLaVA's config strings, plus
Flamingo's Perceiver resampler (a fixed number of learned queries reading the encoder states)."""
from __future__ import annotations

import torch
from torch import nn

from .. import names


def linear(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


def mlp2x_gelu(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


class Resampler(nn.Module):
    """Perceiver resampler (Alayrac et al. 2022, "Flamingo", §2.1 and Fig. 5; Jaegle et al. 2021):
    ``queries`` learned latents attend to the encoder states (and to themselves) through
    ``depth`` blocks of cross-attention + feed-forward, so any number of input states becomes a
    fixed number of output tokens of the GPT's width. (N, L, in_dim) → (N, queries, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, queries: int = 8, depth: int = 1):
        super().__init__()
        heads = next(h for h in (8, 4, 2, 1) if (out_dim % h == 0 and out_dim // h >= 8) or h == 1)
        self.input = nn.Linear(in_dim, out_dim)
        self.latents = nn.Parameter(torch.randn(queries, out_dim) * 0.02)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm_media": nn.LayerNorm(out_dim), "norm_latents": nn.LayerNorm(out_dim),
            "attention": nn.MultiheadAttention(out_dim, heads, batch_first=True),
            "norm_ff": nn.LayerNorm(out_dim),
            "ff": nn.Sequential(nn.Linear(out_dim, 4 * out_dim), nn.GELU(), nn.Linear(4 * out_dim, out_dim)),
        }) for _ in range(depth))
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.dim() == 2:  # one pooled vector per item: a sequence of one
            states = states.unsqueeze(1)
        media = self.input(states)  # (N, L, D)
        latents = self.latents.unsqueeze(0).expand(len(media), -1, -1)  # (N, Q, D)
        for block in self.blocks:
            q = block["norm_latents"](latents)
            kv = torch.cat([block["norm_media"](media), q], dim=1)  # Flamingo: the latents also read themselves
            latents = latents + block["attention"](q, kv, kv, need_weights=False)[0]
            latents = latents + block["ff"](block["norm_ff"](latents))
        return self.norm(latents)


def resampler(in_dim: int, out_dim: int, queries: int = 8) -> nn.Module:
    return Resampler(in_dim, out_dim, queries)


PROJECTORS = {"linear": linear, "mlp2x_gelu": mlp2x_gelu, "resampler": resampler}
names.check_registry(PROJECTORS, names.PROJECTORS, "projector")


def build_projector(kind: str, in_dim: int, out_dim: int, normalise: bool = False, queries: int = 8) -> nn.Module:
    """A projector by name; ``normalise`` puts a LayerNorm on its input (for pooled CNN features,
    whose dimensions differ in scale by orders of magnitude: hue sits in the small ones);
    ``queries`` is the resampler's number of output tokens."""
    if kind not in PROJECTORS:
        raise ValueError(f"unknown projector {kind!r}; allowed values: {', '.join(PROJECTORS)}")
    projector = PROJECTORS[kind](in_dim, out_dim, queries) if kind in names.SEQUENCE_PROJECTORS \
        else PROJECTORS[kind](in_dim, out_dim)
    return nn.Sequential(nn.LayerNorm(in_dim), projector) if normalise else projector


def grid_states(last_hidden_state: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) spatial states of any image backbone: a CNN's map as it is; a ViT/CLIP
    sequence's patch states (its [CLS] state dropped) laid back on their square grid."""
    if last_hidden_state.dim() == 4:
        return last_hidden_state
    states = patch_states(last_hidden_state)  # (N, P, D)
    n, p, d = states.shape
    side = int(round(p ** 0.5))
    if side * side != p:
        raise ValueError(f"the attend connector needs a square grid of image states; got {p}")
    return states.transpose(1, 2).reshape(n, d, side, side)


def with_coordinates(grid: torch.Tensor) -> torch.Tensor:
    """CoordConv (Liu et al. 2018): two channels holding each cell's x and y in [-1, 1], appended,
    so what reads the grid can say *where* a feature is."""
    n, _, h, w = grid.shape
    y = torch.linspace(-1, 1, h, dtype=grid.dtype, device=grid.device).view(1, 1, h, 1).expand(n, 1, h, w)
    x = torch.linspace(-1, 1, w, dtype=grid.dtype, device=grid.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([grid, x, y], dim=1)


class AttendConnector(nn.Module):
    """The image read *for the prompt*: ``heads`` queries, set by a GRU over the prompt's token
    embeddings, attend over the tower's spatial states (with CoordConv's coordinate channels, Liu
    et al. 2018), one pooled vector per head. Instruction-aware reading as in InstructBLIP (Dai et
    al. 2023, whose Q-Former queries also see the instruction), reduced to one cross-attention:
    the question chooses *where* to read before anything is pooled, so "what color is the
    triangle?" gets the triangle's colour, not the mean of the scene's. A GRU, not a bag of words:
    "is the circle left of the square?" and its reverse have the same words. The prompt's tokens
    are embedded by the connector's own table (``embed``, as the Q-Former reads the instruction
    with its own BERT embeddings), not the LM's: those are N(0, 0.02)-scale and shared with the
    decoder; read through them the reading was learned later or not at all (docs/results.md).
    (N, C, h, w) states + (N, L, dim) prompt embeddings (``embed``) with their lengths → (N, heads, dim)."""

    def __init__(self, in_channels: int, vocab_size: int, dim: int = 128, heads: int = 4):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.embed = nn.Embedding(vocab_size, dim)
        self.question = nn.GRUCell(dim, dim)
        self.keys_values = nn.Sequential(nn.Conv2d(in_channels + 2, dim, 1), nn.GELU(), nn.Conv2d(dim, 2 * dim, 1))
        self.queries = nn.Linear(dim, heads * dim)
        for layer in (self.embed, self.question, self.keys_values[0], self.keys_values[2], self.queries):
            layer.keeps_torch_init = True  # the fused model's init leaves PyTorch's (see MbmPreTrainedModel)

    def encode_question(self, embeds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, L, D) left-aligned prompt embeddings, ``lengths`` (N,) → (N, dim)."""
        # a GRU cell stepped by hand: nn.GRU's fused CPU kernel gave a reloaded copy of the same
        # weights results 1e-7 apart; the prompts are a dozen tokens, so the loop costs little
        state = embeds.new_zeros(len(embeds), self.dim)
        for t in range(embeds.shape[1]):
            state = torch.where((t < lengths).unsqueeze(1), self.question(embeds[:, t], state), state)
        return state

    def attention(self, grid: torch.Tensor, embeds: torch.Tensor, lengths: torch.Tensor):
        """(weights (N, heads, h·w), values (N, h·w, dim)): where each head reads, and what is there."""
        keys, values = self.keys_values(with_coordinates(grid)).flatten(2).transpose(1, 2).chunk(2, dim=-1)
        queries = self.queries(self.encode_question(embeds, lengths)).view(len(grid), self.heads, self.dim)
        return torch.softmax(queries @ keys.transpose(1, 2) / self.dim ** 0.5, dim=-1), values

    def forward(self, grid: torch.Tensor, embeds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        weights, values = self.attention(grid, embeds, lengths)
        return weights @ values  # (N, heads, dim)


def prompt_tokens(input_ids: torch.Tensor, keep: torch.Tensor, embeddings: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The embeddings of the tokens ``keep`` marks in each row, moved to the row's start (the rest
    zero), and their counts: (B, T) ids and mask → (B, L, D), (B,)."""
    lengths = keep.sum(1)
    width = max(int(lengths.max()), 1) if len(lengths) else 1
    out = torch.zeros(len(input_ids), width, embeddings.embedding_dim, device=input_ids.device,
                      dtype=embeddings.weight.dtype)
    slots = torch.cumsum(keep.long(), 1) - 1
    rows = torch.arange(len(input_ids), device=input_ids.device).unsqueeze(1).expand_as(input_ids)
    out = out.index_put((rows[keep], slots[keep]), embeddings(input_ids[keep]))
    return out, lengths


def pixel_shuffle(patches: torch.Tensor, factor: int) -> torch.Tensor:
    """Space-to-depth on the patch grid (nanoVLM, Idefics3): each f×f block of patches becomes one
    token with f²× the width, so the GPT reads f² times fewer image tokens at no loss of detail."""
    if factor == 1:
        return patches
    n, p, d = patches.shape
    side = int(round(p ** 0.5))
    if side * side != p or side % factor:
        raise ValueError(f"pixel shuffle {factor} needs a square patch grid divisible by it; got {p} patches")
    grid = patches.reshape(n, side // factor, factor, side // factor, factor, d)  # (N, h, f, w, f, D)
    grid = grid.permute(0, 1, 3, 2, 4, 5)  # (N, h, w, f, f, D)
    return grid.reshape(n, (side // factor) ** 2, factor * factor * d)  # (N, P/f², f²·D)


def frame_pool(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """Average every ``factor`` consecutive encoder frames into one token (the last, shorter
    window averages what it has), so a clip costs the GPT ``factor``× fewer positions."""
    if factor == 1:
        return frames
    n, t, d = frames.shape
    pad = (-t) % factor
    counts = torch.ones(1, t, 1, dtype=frames.dtype, device=frames.device)
    if pad:
        frames = torch.cat([frames, frames.new_zeros(n, pad, d)], dim=1)
        counts = torch.cat([counts, counts.new_zeros(1, pad, 1)], dim=1)
    sums = frames.reshape(n, -1, factor, d).sum(2)  # (N, T/f, D)
    return sums / counts.reshape(1, -1, factor, 1).sum(2)


def pooled_length(frames: int, factor: int) -> int:
    return -(-frames // factor)


def patch_states(last_hidden_state: torch.Tensor) -> torch.Tensor:
    """(N, P, D) patch states of any image backbone: a CNN's (N, C, h, w) map is flattened row
    by row; a ViT/CLIP sequence of 1 + side² states loses its leading [CLS] state."""
    if last_hidden_state.dim() == 4:
        return last_hidden_state.flatten(2).transpose(1, 2)  # (N, h·w, C)
    n, length, d = last_hidden_state.shape
    side = int(round((length - 1) ** 0.5))
    if length > 1 and side * side == length - 1:
        return last_hidden_state[:, 1:]
    return last_hidden_state


def pooled_image(outputs) -> torch.Tensor:
    """One vector per image for contrastive alignment: the backbone's pooled output when it has
    one (a CNN's global average pool, CLIP's normalised CLS), otherwise the [CLS] state."""
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    return outputs.last_hidden_state[:, 0]
