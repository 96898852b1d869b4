"""The runbook every notification links to (docs/runbook.md), as Markdown and as HTML.

Notifications link to ``<runbook>#<rule kind>``: each heading gets an ``id`` made from its
text (``## stale`` → ``id="stale"``, ``## A channel that keeps failing`` →
``id="a-channel-that-keeps-failing"``), so every kind's link lands on its section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt

_NOT_SLUG = re.compile(r"[^\w\- ]+")


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True, slots=True)
class Rendered:
    html: str
    headings: tuple[Heading, ...]


def slug(text: str) -> str:
    """A heading's anchor, as GitHub makes it: lower case, punctuation dropped, spaces → -."""
    return _NOT_SLUG.sub("", text.strip().lower()).replace(" ", "-")


def text() -> str | None:
    """docs/runbook.md: packaged beside this module in a wheel, else the source tree's."""
    packaged = resources.files("flowdeck.alerts").joinpath("runbook.md")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"
    return source.read_text(encoding="utf-8") if source.is_file() else None


def render(markdown: str) -> Rendered:
    """CommonMark (plus tables) to HTML; raw HTML in the source is escaped, not passed on."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    headings: list[Heading] = []
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        title = tokens[i + 1].content
        anchor = slug(title) or "section"
        # A repeated heading gets -1, -2, … as on GitHub.
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        if count:
            anchor = f"{anchor}-{count}"
        token.attrSet("id", anchor)
        headings.append(Heading(int(token.tag[1]), title, anchor))
    return Rendered(md.renderer.render(tokens, md.options, {}), tuple(headings))


@cache
def _rendered(markdown: str) -> Rendered:
    return render(markdown)


def page() -> Rendered | None:
    """The installed runbook as HTML (None when it is not installed)."""
    markdown = text()
    return _rendered(markdown) if markdown is not None else None
