"""Data collection and preprocessing (notebook 01_collect)."""
from .collect import DropReport, EmptySourceError, build_dataset, split_by_image  # noqa: F401
