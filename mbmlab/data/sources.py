"""How the data sources combine: the rules 01_collect's ``sources`` (and the parameters they
read) must obey. No torch, no datasets: the parameter schema (``mbmlab.lab.params``) checks them
before a run starts, and ``mbmlab.data.collect`` checks them again before it collects."""
from __future__ import annotations

from typing import Any

from ..names import GRAMMAR_LANGUAGES, IMAGE_SOURCES, LANGUAGES, SOURCES
from .attributes import BiasSpecError, parse_bias_pairs


class SourceError(ValueError):
    """A combination of sources (and their parameters) that cannot be collected."""


def check_sources(values: dict[str, Any]) -> None:
    """The 01_collect rules that need more than one parameter."""
    sources = values["sources"]
    if not sources:
        raise SourceError(f"sources is empty; allowed values: {', '.join(SOURCES)}")
    if "speech" in sources and not set(sources) & set(IMAGE_SOURCES):
        raise SourceError("the speech source speaks the captions and questions of an image source; "
                          "add easyvqa, scenes or user to sources")
    if "user" in sources and bool(values.get("user_dir")) == bool(values.get("user_hub")):
        raise SourceError("the user source needs exactly one of user_dir (a folder) or user_hub (a dataset name)")
    target = values.get("target_language", "zh")
    if target not in LANGUAGES:
        raise SourceError(f"target_language {target!r} is not supported; supported: {', '.join(LANGUAGES)}")
    wrong = [s for s in sources if s in GRAMMAR_LANGUAGES and GRAMMAR_LANGUAGES[s] != target]
    if wrong:
        raise SourceError(f"the {', '.join(wrong)} source{'s' if len(wrong) > 1 else ''} translate only into "
                          f"{GRAMMAR_LANGUAGES[wrong[0]]} (mbmlab.data.chinese), not {target!r}; "
                          "a user source brings other languages through translation_column")
    if "scenes" in sources and values.get("bias_pairs"):
        try:
            parse_bias_pairs(values["bias_pairs"])
        except BiasSpecError as err:
            raise SourceError(str(err)) from None
