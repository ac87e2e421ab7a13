"""mbmlab: a notebook-driven research workbench for small multimodal GPT models.

The code map is ``mbmlab/README.md``. ``import mbmlab`` loads no torch (the ``mbmlab`` command
answers at once) and still registers the fused model family (``mbmlab.models``) with the
transformers Auto classes: at once when transformers is already imported, else the moment it
is, so ``AutoModelForImageTextToText.from_pretrained("reports/<run>/fused")`` works after
``import mbmlab`` whichever of the two came first.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# tqdm.auto warns on import in a kernel without ipywidgets. Our progress bars are text on
# purpose (they also render in the HTML report), so the warning only adds a red box.
warnings.filterwarnings("ignore", message="IProgress not found")


def _register_family() -> None:
    importlib.import_module("mbmlab.models")  # its __init__ registers config, model and processor


class _AfterTransformers(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``transformers`` through the other finders, runs its module as usual, then registers
    the family: a post-import hook for one module, removed once it has fired."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader  # transformers sees its own loader
        self._loader.exec_module(module)
        _register_family()


if "transformers" in sys.modules:
    _register_family()
elif not any(isinstance(f, _AfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterTransformers())
