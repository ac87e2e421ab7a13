"""The image side: backbone configs (a ResNet or a ViT from scratch), the image processor, and
pretrained backbones by hub name or local path (a ViT, CLIP's vision tower, a ResNet, …).

The image processor is transformers' ViT image processor with its PIL backend (without
torchvision ``ViTImageProcessor`` falls back to it anyway; naming it says what runs): resize
to the tower's input side and scale pixels to [-1, 1].
"""
from __future__ import annotations

import torch
from transformers import ResNetConfig, ViTConfig, ViTImageProcessorPil

from ..names import TOWERS  # noqa: F401  (the towers 02_train can build from scratch)


def image_processor(image_size: int) -> ViTImageProcessorPil:
    return ViTImageProcessorPil(size={"height": image_size, "width": image_size},
                                image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def vit_config(image_size: int, patch_size: int, dim: int, layers: int, heads: int) -> ViTConfig:
    return ViTConfig(image_size=image_size, patch_size=patch_size, hidden_size=dim, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=4 * dim)


def resnet_config(width: int, depth: int) -> ResNetConfig:
    """A small ResNet of basic blocks, three stages of widths w, 2w, 4w with ``depth`` blocks each.
    The stem (7×7 stride-2 convolution, 3×3 max-pool) and two stride-2 stages make a 64×64 image
    a 4×4 grid of 4w-wide states."""
    return ResNetConfig(embedding_size=width, hidden_sizes=[width, 2 * width, 4 * width], depths=[depth] * 3,
                        layer_type="basic", downsample_in_first_stage=False)


def tower_config(params: dict):
    """The config of the image tower the parameters ask for (``vision_tower``: resnet or vit)."""
    if params["vision_tower"] == "resnet":
        return resnet_config(params["resnet_width"], params["resnet_depth"])
    if params["vision_tower"] == "vit":
        return vit_config(params["image_size"], params["patch_size"], params["vit_dim"], params["vit_layers"],
                          params["vit_heads"])
    raise ValueError(f"unknown vision_tower {params['vision_tower']!r}; allowed values: {', '.join(TOWERS)}")


def new_image_encoder(config, seed: int):
    from transformers import AutoModel

    torch.manual_seed(seed)
    extra = {"add_pooling_layer": False} if config.model_type == "vit" else {}
    return AutoModel.from_config(config, **extra)


def pixel_values(dataset, processor, batch_size: int = 512) -> torch.Tensor:
    """(N, 3, H, W) float tensor for every image of a ``datasets`` split, in row order."""
    chunks = []
    for start in range(0, len(dataset), batch_size):
        images = dataset[start:start + batch_size]["image"]
        chunks.append(processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"])
    return torch.cat(chunks) if chunks else torch.empty(0)


def load_image_backbone(name_or_path: str):
    """A pretrained image backbone by hub name (needs network) or local path: a ViT, a ResNet,
    the vision tower of a CLIP checkpoint, or one saved by 02_train."""
    from transformers import AutoConfig, AutoModel, CLIPVisionModel

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type == "clip":  # a whole CLIP checkpoint: its vision tower
        return CLIPVisionModel.from_pretrained(name_or_path)
    if config.model_type == "vit":  # patch and CLS states are used; ViT's pooler head is not
        return AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    return AutoModel.from_pretrained(name_or_path)


def load_image_encoder(name_or_path: str):
    """(backbone, image processor) of a pretrained image model (see ``load_image_backbone``)."""
    from transformers import AutoImageProcessor

    return load_image_backbone(name_or_path), AutoImageProcessor.from_pretrained(name_or_path)


def input_size(encoder, processor) -> int:
    """The image side the processor resizes to (what the fused config's ``image_size`` must be)."""
    size = getattr(processor, "size", None) or {}
    side = size.get("height") or size.get("shortest_edge") or getattr(encoder.config, "image_size", None)
    if not side:
        raise ValueError(f"cannot tell the input size of {type(encoder).__name__}; its processor has size={size!r}")
    return int(side)
