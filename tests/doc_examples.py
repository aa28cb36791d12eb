"""The scripts docs/sdk.md shows, read from the page itself: what the tests run is what people copy."""

from __future__ import annotations

from pathlib import Path

SDK_PAGE = Path(__file__).resolve().parents[1] / "docs" / "sdk.md"


def example(heading: str) -> str:
    """The first Python block under `heading` (a line of the page, e.g. "## Your training script")."""
    page = SDK_PAGE.read_text()
    section = page[page.index(f"\n{heading}\n"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    return code[:code.index("```")]


def write_example(heading: str, path: Path) -> Path:
    path.write_text(example(heading))
    return path
