"""MbmConfig: what it refuses."""
import pytest

import family
from mbmlab.models import MbmConfig, text
from mbmlab.models.connectors import build_projector


def test_unknown_projector_and_fusion_are_refused(tokenizer):
    with pytest.raises(ValueError, match="allowed values: linear, mlp2x_gelu, resampler"):
        build_projector("mlp9x", 4, 4)
    config = text.gpt2_config(tokenizer, 32, 1, 2)
    with pytest.raises(ValueError, match="unknown fusion"):
        MbmConfig(text_config=config, fusion="late")
    with pytest.raises(ValueError, match="needs image_token_id"):
        MbmConfig(text_config=config, vision_config=family.vision_config("vit"))
