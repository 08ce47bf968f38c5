"""Paths shared by the test packages."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SITE = ROOT / "site"
LANGUAGES = ("en", "zh")


def notebooks(language: str) -> list[Path]:
    return sorted((DOCS / language).rglob("*.ipynb"))


def markdown_pages(language: str) -> list[Path]:
    return sorted((DOCS / language).rglob("*.md"))
