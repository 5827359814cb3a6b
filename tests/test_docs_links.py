"""Every relative link of the repository's Markdown resolves inside the repository.

For each tracked `*.md` file, each `[text](path)`, `[text](path#anchor)` and `[text](#anchor)`
must name a file of this repository (never one outside it, such as a sibling checkout), and each
anchor must match a heading of the target file under GitHub's rules. External `http(s)` links and
`mailto:` are not checked (no network). Links in code blocks and code spans are not links."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
PARSER = MarkdownIt("commonmark").enable("table")


def tracked_markdown() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return sorted(line for line in out.splitlines() if line)


def slug(text: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def inline_text(token: Token) -> str:
    """The rendered text of an inline token: code spans keep their content, markup goes."""
    return "".join(
        child.content for child in token.children or [] if child.type in ("text", "code_inline")
    )


@cache
def tokens(path: Path) -> list[Token]:
    return PARSER.parse(path.read_text(encoding="utf-8"))


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a file's headings, duplicates suffixed -1, -2, ... as GitHub does."""
    found: set[str] = set()
    seen: Counter[str] = Counter()
    toks = tokens(path)
    for i, tok in enumerate(toks):
        if tok.type != "heading_open":
            continue
        base = slug(inline_text(toks[i + 1]))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return frozenset(found)


def links(path: Path) -> list[str]:
    hrefs = []
    for tok in tokens(path):
        for child in tok.children or []:
            if child.type == "link_open":
                hrefs.append(str(child.attrs.get("href", "")))
    return hrefs


def problems(name: str) -> list[str]:
    source = ROOT / name
    found = []
    for href in links(source):
        if re.match(r"[a-z][a-z0-9+.-]*:", href, re.I):  # http:, https:, mailto:, ...
            continue
        target, _, anchor = href.partition("#")
        path = (source.parent / unquote(target)).resolve() if target else source
        if not path.is_relative_to(ROOT):
            found.append(f"{name}: {href} points outside the repository")
        elif not path.exists():
            found.append(f"{name}: {href}: no such file")
        elif anchor and path.suffix == ".md" and unquote(anchor) not in anchors(path):
            found.append(f"{name}: {href}: no heading with that anchor in {path.relative_to(ROOT)}")
    return found


def test_slug_follows_github() -> None:
    assert slug("Operations: health, metrics, logs, API docs") == (
        "operations-health-metrics-logs-api-docs"
    )
    assert slug("Outbound call: `POST /calls`") == "outbound-call-post-calls"
    assert slug("Lists (GET /calls, GET /chats)") == "lists-get-calls-get-chats"
    assert slug("snake_case and a-dash") == "snake_case-and-a-dash"


def test_duplicate_headings_get_suffixes(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text("# Notes\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n")
    assert anchors(doc) == {"notes", "notes-1", "notes-2"}


def test_links_in_code_are_not_links(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text("```md\n[a](../nowhere.md)\n```\n\n`[b](../nowhere.md)`\n\n[c](#d)\n\n# D\n")
    assert links(doc) == ["#d"]


def test_there_is_markdown_to_check() -> None:
    assert "README.md" in tracked_markdown()


@pytest.mark.parametrize("name", tracked_markdown())
def test_relative_links_resolve(name: str) -> None:
    assert problems(name) == []
