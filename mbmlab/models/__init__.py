"""The fused model family (config, model, processor), registered with the transformers Auto
classes on import, so a saved ``fused/`` folder loads with
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``."""
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_mbm import MbmConfig
from .modeling_mbm import MbmForConditionalGeneration, MbmModel
from .processing_mbm import MbmProcessor

AutoConfig.register(MbmConfig.model_type, MbmConfig, exist_ok=True)
AutoModel.register(MbmConfig, MbmModel, exist_ok=True)
AutoModelForImageTextToText.register(MbmConfig, MbmForConditionalGeneration, exist_ok=True)
AutoProcessor.register(MbmConfig, MbmProcessor, exist_ok=True)

__all__ = ["MbmConfig", "MbmModel", "MbmForConditionalGeneration", "MbmProcessor"]
