"""Data collection and preprocessing (notebook 01_collect)."""
from .clean import DropReport, Dropped, EmptySourceError  # noqa: F401
from .collect import Processed, build_dataset, load_processed, split_by_image  # noqa: F401
