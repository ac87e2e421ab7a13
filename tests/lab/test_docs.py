"""The README is a front door (short, the two commands, links that resolve); the rest of the
documentation lives in docs/ and mbmlab/README.md, whose relative links resolve too."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "mbmlab" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "data" / "README.md", ROOT / "reports" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


def test_links_are_found():
    assert relative_links(ROOT / "README.md"), "the README links to its docs"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert missing == []


def test_readme_is_short_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "./workbench run " in text and "./workbench test " in text
    assert "./workbench test" in (ROOT / ".ci" / "run").read_text()


def test_every_doc_page_is_linked_from_the_readme():
    linked = {(ROOT / t.split("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    pages = {p.resolve() for p in PAGES if p.name != "README.md" or p.parent.name == "mbmlab"}
    assert pages - linked == set()
