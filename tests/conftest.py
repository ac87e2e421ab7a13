import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from mbmlab.models import text, vision  # noqa: E402
from mbmlab.models.fused import MbmConfig, MbmForConditionalGeneration  # noqa: E402

LINES = [
    "question: what color is the shape? answer: blue",
    "question: is there a red shape? answer: no",
    "question: what shape is in the image? answer: circle",
    "caption: a blue rectangle",
    "caption: a red circle",
] * 20


@pytest.fixture(scope="session")
def tokenizer():
    return text.train_tokenizer(LINES, 300)


@pytest.fixture(scope="session")
def fused_model(tokenizer):
    """A small untrained fused model, in eval mode (dropout off)."""
    lm = text.new_language_model(tokenizer, dim=32, layers=2, heads=2, seed=0)
    config = MbmConfig(vision_config=vision.vit_config(32, 8, 32, 1, 2), text_config=lm.config,
                       image_token_id=text.image_token_id(tokenizer))
    torch.manual_seed(0)
    return MbmForConditionalGeneration.from_parts(config, language_model=lm).eval()


@pytest.fixture(scope="session")
def pixels():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)
