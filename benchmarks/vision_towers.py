"""Which image tower sees shape? Each tower the workbench can build from scratch (the default
preset's ResNet and ViT) gets a linear head and is trained to name the shape of easy-VQA images
(3 classes); test accuracy after each epoch, and the seconds it took, on this machine's CPU.

    .venv/bin/python benchmarks/vision_towers.py [--epochs 3] [--train-images 3000] [--test-images 1000]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from mbmlab.lab import params as P
from mbmlab.data.collect import build_dataset
from mbmlab.models import vision
from mbmlab.models.connectors import pooled_image
from mbmlab.lab.paths import data_dir


class Probe(nn.Module):
    def __init__(self, tower, classes: int):
        super().__init__()
        self.tower = tower
        width = tower.config.hidden_sizes[-1] if hasattr(tower.config, "hidden_sizes") else tower.config.hidden_size
        self.head = nn.Linear(width, classes)

    def forward(self, pixels):
        return self.head(pooled_image(self.tower(pixel_values=pixels)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    values = P.resolve("default", {"sources": ["easyvqa"], "max_train_images": args.train_images,
                                   "max_test_images": args.test_images})
    data = build_dataset(values, data_dir(), progress=False).images
    processor = vision.image_processor(values["image_size"])
    splits = {s: data[s].filter(lambda r: r["shape"] != "") for s in ("train", "test")}
    shapes = sorted(set(splits["train"]["shape"]))
    pixels = {s: vision.pixel_values(d, processor) for s, d in splits.items()}
    labels = {s: torch.tensor([shapes.index(x) for x in d["shape"]]) for s, d in splits.items()}
    print(f"{len(labels['train'])} training and {len(labels['test'])} test images, shapes {shapes}; "
          f"torch {torch.get_num_threads()} threads")
    print(f"{'tower':8} {'parameters':>10} " + " ".join(f"{'epoch ' + str(e + 1):>14}" for e in range(args.epochs)))
    for kind in vision.TOWERS:
        torch.manual_seed(0)
        tower = vision.new_image_encoder(vision.tower_config(values | {"vision_tower": kind}), seed=0)
        model = Probe(tower, len(shapes))
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
        cells, start = [], time.perf_counter()
        for _ in range(args.epochs):
            model.train()
            order = torch.randperm(len(labels["train"]))
            for i in range(0, len(order), args.batch):
                rows = order[i:i + args.batch]
                loss = nn.functional.cross_entropy(model(pixels["train"][rows]), labels["train"][rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(pixels["test"]).argmax(1) == labels["test"]).float().mean().item()
            cells.append(f"{accuracy:6.1%} {time.perf_counter() - start:5.1f}s")
        print(f"{kind:8} {sum(p.numel() for p in tower.parameters()):>10,} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
