"""The README stays a newcomer's page and the documentation holds together: the README is
short, every relative link in it and in docs/ points at a file that exists (no anchors:
headings get reworded, files are what a move breaks visibly), and the docs index lists every
page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 320
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _links(page: Path) -> list[str]:
    """The targets of the page's links and images, as a Markdown renderer reads them (so a
    bracket in a code block is not a link)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))
    children = [child for token in tokens for child in token.children or ()]
    return [
        str(child.attrs["href"] if child.type == "link_open" else child.attrs["src"])
        for child in children
        if child.type in ("link_open", "image")
    ]


def _relative(target: str) -> bool:
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail to a docs/ page"
    )


def test_every_relative_link_points_at_a_file() -> None:
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in _links(page)
        if _relative(target) and ("#" in target or not (page.parent / target).is_file())
    ]
    assert not broken, "links to no file, or with an anchor:\n" + "\n".join(broken)


def test_links_are_found() -> None:
    """Guards the link test itself: it would pass vacuously if no link were found."""
    readme = _links(ROOT / "README.md")
    assert "docs/README.md" in readme
    assert "docs/safety.md" in readme


def test_the_docs_index_lists_every_page() -> None:
    listed = set(_links(DOCS / "README.md"))
    pages = {page.name for page in DOCS.glob("*.md")} - {"README.md"}
    assert pages - listed == set(), "pages missing from docs/README.md"
