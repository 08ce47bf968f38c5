"""The book's glossary: one YAML file per chapter under ``glossary/``, rendered into both
glossary pages (``<!-- glossary-table -->`` in ``docs/{en,zh}/glossary.md``).

A file is named after the page that first uses its terms: ``glossary/02-training-stability.yml``
belongs to ``docs/<lang>/chapters/02-training-stability.ipynb``, ``glossary/notation.yml`` to
``docs/<lang>/notation.md``. Each entry has ``en``, ``zh`` and optional ``aliases`` (other
English forms, e.g. an abbreviation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "glossary"
MARKER = "<!-- glossary-table -->"


@dataclass(frozen=True)
class Term:
    en: str
    zh: str
    source: str  # the glossary file's stem, e.g. "00-small-gpt"
    aliases: tuple[str, ...] = field(default=())

    def english_forms(self) -> tuple[str, ...]:
        return (self.en, *self.aliases)


def load_terms(folder: Path = GLOSSARY) -> list[Term]:
    """Every term, sorted by English; raises ValueError on a malformed or repeated entry."""
    terms: list[Term] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if not isinstance(entry, dict) or not {"en", "zh"} <= entry.keys():
                raise ValueError(f"{path.name}: each entry needs 'en' and 'zh', got {entry!r}")
            unknown = set(entry) - {"en", "zh", "aliases"}
            if unknown:
                raise ValueError(f"{path.name}: unknown keys {sorted(unknown)} in {entry!r}")
            aliases = entry.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise ValueError(
                    f"{path.name}: 'aliases' must be a list of strings, "
                    f"got {aliases!r} in {entry!r}"
                )
            term = Term(str(entry["en"]), str(entry["zh"]), path.stem, tuple(aliases))
            for form in term.english_forms():
                key = form.lower()
                if key in seen:
                    raise ValueError(f"'{form}' is in both {seen[key]}.yml and {path.name}")
                seen[key] = path.stem
            terms.append(term)
    return sorted(terms, key=lambda t: t.en.lower())


def source_page(stem: str) -> str:
    """The docs page (relative to a language folder) that a glossary file belongs to: the
    chapter notebook built from ``notebooks/<stem>.md`` if there is one, else ``<stem>.md``."""
    if (ROOT / "notebooks" / f"{stem}.md").exists():
        return f"chapters/{stem}.ipynb"
    return f"{stem}.md"


_LABELS = {
    "notation": {"en": "Notation", "zh": "符号约定"},
    "interlude": {"en": "Interlude", "zh": "插曲"},
    "appendix": {"en": "Appendix", "zh": "附录"},
}


def _label(stem: str, language: str) -> str:
    """What the glossary table shows for a page: a chapter number, or the page's kind."""
    match = re.match(r"(\d+)(i?)-", stem)
    if match and not match.group(2):
        return str(int(match.group(1)))
    kind = "interlude" if match else stem.split("-")[0]
    return _LABELS.get(kind, {}).get(language, stem)


def render_table(terms: list[Term], language: str) -> str:
    """A Markdown table; links are relative to ``docs/<language>/glossary.md``."""
    if language == "en":
        lines = ["| English | 中文 | first used in |", "|---|---|---|"]
    else:
        terms = sorted(terms, key=lambda t: t.zh)
        lines = ["| 中文 | English | 首次出现 |", "|---|---|---|"]
    for term in terms:
        english = term.en + "".join(f" ({alias})" for alias in term.aliases)
        where = f"[{_label(term.source, language)}]({source_page(term.source)})"
        first, second = (english, term.zh) if language == "en" else (term.zh, english)
        lines.append(f"| {first} | {second} | {where} |")
    return "\n".join(lines)
