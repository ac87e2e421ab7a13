"""Image preprocessing for the ViT: transformers' ViT image processor, PIL backend.

Without torchvision ``ViTImageProcessor`` falls back to this backend anyway (with a warning);
naming ``ViTImageProcessorPil`` directly says what runs.
"""
from __future__ import annotations

import torch
from transformers import ViTConfig, ViTImageProcessorPil


def image_processor(image_size: int) -> ViTImageProcessorPil:
    return ViTImageProcessorPil(size={"height": image_size, "width": image_size},
                                image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def vit_config(image_size: int, patch_size: int, dim: int, layers: int, heads: int) -> ViTConfig:
    return ViTConfig(image_size=image_size, patch_size=patch_size, hidden_size=dim, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=4 * dim)


def load_image_processor(path) -> ViTImageProcessorPil:
    return ViTImageProcessorPil.from_pretrained(path)


def pixel_values(dataset, processor, batch_size: int = 512) -> torch.Tensor:
    """(N, 3, H, W) float tensor for every image of a ``datasets`` split, in row order."""
    chunks = []
    for start in range(0, len(dataset), batch_size):
        images = dataset[start:start + batch_size]["image"]
        chunks.append(processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"])
    return torch.cat(chunks) if chunks else torch.empty(0)


def load_image_encoder(name_or_path: str):
    """(encoder, image processor) of a pretrained image model by hub name (needs network) or local
    path: a ViT (``ViTModel``), the vision tower of a CLIP checkpoint, or one saved by 02_train."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPVisionModel

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type == "clip":
        encoder = CLIPVisionModel.from_pretrained(name_or_path)
    elif config.model_type == "vit":  # patch and CLS states are used; ViT's pooler head is not
        encoder = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    else:
        encoder = AutoModel.from_pretrained(name_or_path)
    return encoder, AutoImageProcessor.from_pretrained(name_or_path)


def new_image_encoder(config, seed: int):
    from transformers import ViTModel

    torch.manual_seed(seed)
    return ViTModel._from_config(config, add_pooling_layer=False)


def check_same_shape(found, wanted) -> None:
    """Refuse a pretrained ViT whose shape differs from the parameters asked for (rather than
    silently training another architecture than the report's parameters say)."""
    keys = ("model_type", "image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    differ = {k: (getattr(found, k, None), getattr(wanted, k, None)) for k in keys
              if getattr(found, k, None) != getattr(wanted, k, None)}
    if differ:
        detail = ", ".join(f"{k}: {a} (encoder) vs {b} (parameters)" for k, (a, b) in differ.items())
        raise ValueError(f"the aligned image encoder does not match the ViT parameters ({detail}); "
                         f"use the same ViT parameters in 02_train and 03_fuse, or vision_init='random'")
