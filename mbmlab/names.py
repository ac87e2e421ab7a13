"""The names every layer shares, in one place and free of torch: the model family's registries
(fusion strategies, connectors, projectors, trainable parts, towers, tasks), the data sources,
the VQA baselines, the bias-study mitigations and the translation languages.

The modules that implement each registry key their tables by these names (and check at import
that they match); the parameter schema (``mbmlab.lab.params``) takes its choices from here, so
checking parameters imports no torch.
"""
FUSIONS = ("prefix", "cross_attention", "early")  # mbmlab.models.fusion
IMAGE_CONNECTORS = ("pooled", "patches", "attend")  # mbmlab.models.connectors
PROJECTORS = ("linear", "mlp2x_gelu", "resampler")  # mbmlab.models.connectors
SEQUENCE_PROJECTORS = ("resampler",)  # projectors that read a sequence and emit a fixed number of tokens
PARTS = ("vision_tower", "audio_tower", "image_projector", "audio_projector", "fusion", "language_model")
TOWERS = ("resnet", "vit")  # the image towers 02_train can build from scratch (mbmlab.models.vision)

# task → the inputs it needs; the prompt of each is built by mbmlab.models.processing_mbm.MbmProcessor.prompt
TASKS = {
    "caption": ("image",),
    "vqa": ("image",),
    "asr": ("audio",),
    "spoken_vqa": ("image", "audio"),
    "translate": ("image",),  # image + its English caption → the caption in the data's language (LANGUAGES)
    "speech_translate": ("audio",),  # a spoken caption → its translation, from the clip alone
    "translated_vqa": ("image",),  # image + a question in the data's language → the answer in it (ask --lang)
}
TRANSLATE_TASKS = ("translate", "speech_translate", "translated_vqa")  # trained when asked for (translate, tiny presets)

# transcripts decoded jointly by the GPT and the audio tower's CTC head: the head's share of each
# candidate token's score (mbmlab.metrics.joint_decoding; chosen on validation clips, docs/results.md);
# 04's asr_ctc_weight, 07's, and mbmlab ask's --ctc-weight default to it
ASR_CTC_WEIGHT = 0.3

# the languages a run can translate into: name, sacrebleu's tokenizer for BLEU, espeak-ng's voice.
# The drawn sources translate into "zh" only (their grammar: mbmlab.data.chinese); a user's data
# brings any of these through translation_column.
LANGUAGES = {
    "zh": {"name": "Chinese (Mandarin)", "bleu_tokenize": "zh", "espeak_voice": "cmn"},
    "de": {"name": "German", "bleu_tokenize": "13a", "espeak_voice": "de"},
    "fr": {"name": "French", "bleu_tokenize": "13a", "espeak_voice": "fr"},
    "cs": {"name": "Czech", "bleu_tokenize": "13a", "espeak_voice": "cs"},
}
GRAMMAR_LANGUAGES = {"easyvqa": "zh", "scenes": "zh"}  # source → the one language its grammar writes
# an image row's translation columns (mbmlab.data.collect.FEATURES); read by the translate tasks and 02's corpus
TRANSLATED_COLUMNS = ("translation", "language", "translated_questions", "translated_answers")

SOURCES = ("easyvqa", "scenes", "speech", "user")  # mbmlab.data.collect
IMAGE_SOURCES = ("easyvqa", "scenes", "user")  # the sources whose text the speech source speaks

# the trained VQA baselines of 04_evaluate (mbmlab.analyses.baselines)
BASELINES = {
    "blind": "question only: the same model trained and asked with a blank image",
    "image_only": "image only: the same model trained and asked with every question hidden",
    "random_init": "the fused architecture at random initialisation, untrained",
    "cnn_bow": "the classic supervised VQA classifier: the image tower from scratch, a bag of words, an answer "
               "softmax, trained until its validation exact match stops improving",
}
MITIGATIONS = ("none", "oversample")  # mbmlab.analyses.bias_study


def check_registry(registry, names: tuple[str, ...], what: str) -> None:
    """Raise when an implementation's registry and its names here part ways (a developer error)."""
    if tuple(registry) != tuple(names):
        raise RuntimeError(f"the {what} registry has {tuple(registry)} but mbmlab.names lists {tuple(names)}")
