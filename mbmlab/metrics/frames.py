"""Predictions as tables: one row per test example of a task, with what the report breaks them
down by (the image's source and attributes, the clip's voice)."""
from __future__ import annotations

import pandas as pd

IMAGE_COLUMNS = ("image_id", "source", "colour", "shape")
CLIP_COLUMNS = ("clip_id", "image_id", "voice", "accent", "gender", "engine")


def predictions_frame(examples, predictions: list[str], task: str, images=None, speech=None) -> pd.DataFrame:
    """``question``, ``answer`` (the target), ``question_type``, ``prediction``, plus the image's
    and the clip's columns for the examples that have them."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples for {len(predictions)} predictions")
    image_info = images.select_columns(list(IMAGE_COLUMNS)) if images is not None else None
    clip_info = speech.select_columns(list(CLIP_COLUMNS)) if speech is not None else None
    rows = []
    for example, prediction in zip(examples, predictions):
        if example.task != task:
            continue
        row = {"question": example.question, "answer": example.target, "question_type": example.question_type,
               "prediction": prediction}
        if example.image is not None:
            row |= image_info[example.image]
        if example.clip is not None:
            row |= clip_info[example.clip]
        rows.append(row)
    return pd.DataFrame(rows)
