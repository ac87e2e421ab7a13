"""mbmlab: a notebook-driven research workbench for small multimodal GPT models."""
import warnings

__version__ = "0.1.0"

# tqdm.auto warns on import in a kernel without ipywidgets. Our progress bars are text on
# purpose (they also render in the HTML report), so the warning only adds a red box.
warnings.filterwarnings("ignore", message="IProgress not found")

from . import models  # noqa: E402,F401  (registers the fused model family with the Auto classes)
