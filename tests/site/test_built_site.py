"""Static checks of the built site (run after `mkdocs build --strict`)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlparse

import pytest
from bs4 import BeautifulSoup

from tests.paths import DOCS, LANGUAGES, SITE, notebooks


def page_url(language: str, source: Path) -> str:
    """Site-relative URL of the page built from docs/<language>/<source>."""
    rel = PurePosixPath(source.relative_to(DOCS / language).as_posix())
    parts = rel.with_suffix("").parts
    if parts[-1] == "index":
        parts = parts[:-1]
    prefix = "" if language == "en" else "zh/"
    return prefix + "".join(part + "/" for part in parts)


def built(url: str) -> Path:
    return SITE / url / "index.html"


def sources(language: str) -> list[Path]:
    return sorted(p for p in (DOCS / language).rglob("*") if p.suffix in (".md", ".ipynb"))


@cache
def soup(url: str) -> BeautifulSoup:
    return BeautifulSoup(built(url).read_text(encoding="utf-8"), "html.parser")


PAGES = [page_url(lang, src) for lang in LANGUAGES for src in sources(lang)]
NOTEBOOK_PAGES = [page_url(lang, nb) for lang in LANGUAGES for nb in notebooks(lang)]


@pytest.fixture(scope="module", autouse=True)
def _built(site: Path) -> None:
    """Every test here needs the built site (the `site` fixture fails clearly without it)."""


@pytest.mark.parametrize("url", PAGES)
def test_every_source_page_is_built_as_html(url: str) -> None:
    text = built(url).read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>"), f"{url} is not an HTML page"


@pytest.mark.parametrize("url", NOTEBOOK_PAGES)
def test_notebook_pages_are_rendered_not_raw_json(url: str) -> None:
    text = built(url).read_text(encoding="utf-8")
    assert '"nbformat"' not in text and '"cell_type"' not in text, f"{url} contains raw notebook JSON"
    page = soup(url)
    assert page.select_one(".jupyter-wrapper .jp-Notebook"), f"{url} has no rendered notebook"
    assert page.select(".jp-RenderedMarkdown"), f"{url} has no rendered Markdown cells"
    assert page.select(".jp-OutputArea-output"), f"{url} shows no stored outputs"


def test_no_html_file_in_the_site_is_raw_json(site: Path) -> None:
    for path in site.rglob("*.html"):
        assert not path.read_text(encoding="utf-8").lstrip().startswith("{"), f"{path} is raw JSON"


@pytest.mark.parametrize("url", NOTEBOOK_PAGES)
def test_notebook_pages_offer_their_notebook_for_download(url: str) -> None:
    link = soup(url).select_one("a.book-download[download]")
    assert link is not None, f"{url} has no download link"
    target = urlparse(link["href"]).path
    path = SITE / target.lstrip("/")
    assert path.suffix == ".ipynb" and path.exists(), f"{url}: download link {target} is broken"
    assert json.loads(path.read_text(encoding="utf-8"))["nbformat"] == 4


def twin_url(url: str) -> tuple[str, str]:
    return ("en", url[3:]) if url.startswith("zh/") else ("zh", "zh/" + url)


@pytest.mark.parametrize("url", PAGES)
def test_language_switcher_lands_on_the_same_page(url: str) -> None:
    other_language, other = twin_url(url)
    if not built(other).exists():
        pytest.fail(f"{url} has no twin page {other}")
    link = soup(url).select_one(f'a.md-select__link[hreflang="{other_language}"]')
    assert link is not None, f"{url} has no language switcher"
    target = urljoin("http://x/" + url, link["href"])
    assert urlparse(target).path == "/" + other, f"{url}: switcher goes to {target}, not /{other}"


@pytest.mark.parametrize("url", PAGES)
def test_every_toc_link_resolves_to_an_id(url: str) -> None:
    page = soup(url)
    ids = {tag["id"] for tag in page.select("[id]")}
    links = page.select("nav.md-nav--secondary a.md-nav__link")
    for link in links:
        fragment = unquote(urlparse(link["href"]).fragment)
        assert fragment and fragment in ids, f"{url}: TOC link #{fragment} has no target"
    for heading in page.select(".md-content h1, .md-content h2, .md-content h3"):
        assert heading.get("id"), f"{url}: heading {heading.get_text()!r} has no id"


@pytest.mark.parametrize("url", [u for u in PAGES if u.startswith("zh/")])
def test_chinese_headings_keep_chinese_ids(url: str) -> None:
    for heading in soup(url).select(".md-content h2[id], .md-content h3[id]"):
        if re.search(r"[\u4e00-\u9fff]", heading.get_text()):
            assert re.search(r"[\u4e00-\u9fff]", heading["id"]), f"{url}: {heading['id']!r}"


EXTERNAL = re.compile(r"^(https?:)?//")


@pytest.mark.parametrize("url", PAGES)
def test_pages_load_nothing_from_other_hosts(url: str) -> None:
    page = soup(url)
    for tag, attribute in [("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"),
                           ("link", "href")]:
        for element in page.find_all(tag):
            value = element.get(attribute)
            if not value or (tag == "link" and not set(element.get("rel", [])) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch", "preconnect"}):
                continue
            assert not EXTERNAL.match(value), f"{url}: <{tag} {attribute}={value!r}> loads from another host"
    assert "fonts.googleapis" not in str(page) and "fonts.gstatic" not in str(page)


def test_stylesheets_load_nothing_from_other_hosts(site: Path) -> None:
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), f"{css} loads a remote URL"
        assert not re.search(r"@import\s+(url\()?['\"]?(https?:)?//", text), f"{css} imports remotely"


def test_math_library_is_served_by_the_site(site: Path) -> None:
    mathjax = site / "assets" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 100_000
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (mathjax / "LICENSE").exists()
    for url in PAGES:
        sources_ = [s.get("src", "") for s in soup(url).find_all("script")]
        assert any(s.endswith("assets/mathjax/tex-chtml.js") for s in sources_), url


def test_no_empty_script_sources() -> None:
    for url in PAGES:
        for script in soup(url).find_all("script"):
            assert script.get("src", None) != "", f"{url} has <script src=\"\">"


def test_search_index_covers_both_languages_with_chinese_word_splitting(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert "\\u200b" in index["config"]["separator"]  # the regex escape, as Material expects
    locations = [doc["location"] for doc in index["docs"]]
    assert any(loc.startswith("zh/chapters/") for loc in locations)
    assert any(loc.startswith("chapters/") for loc in locations)
    chinese = " ".join(doc["text"] for doc in index["docs"] if doc["location"].startswith("zh/"))
    # jieba has split Chinese text into words separated by zero-width spaces.
    words = re.split(r"[\u200b\s]+", chinese)
    assert "注意力" in words and "缓存" in words
    assert chinese.count("\u200b") > 1000


@pytest.mark.parametrize("url", PAGES)
def test_book_chrome_on_every_page(url: str) -> None:
    page = soup(url)
    config = json.loads(page.select_one("#__config").get_text())
    assert "content.code.copy" in config["features"]
    assert page.select('form[data-md-component="palette"] input'), f"{url}: no light/dark toggle"
    footer = page.select_one(".md-copyright").get_text()
    assert "CC BY 4.0" in footer and "MIT" in footer, f"{url}: licenses missing from footer"
    if url not in ("", "zh/"):
        assert page.select("a.md-footer__link--prev"), f"{url}: no previous-page link"


@pytest.mark.parametrize("language", LANGUAGES)
def test_home_page_roadmap_links_every_chapter(language: str) -> None:
    home = soup("" if language == "en" else "zh/")
    hrefs = {a["href"] for a in home.select("table a")}
    for nb in notebooks(language):
        target = page_url(language, nb)[len("" if language == "en" else "zh/"):]
        assert any(h.rstrip("/").endswith(target.rstrip("/")) for h in hrefs), f"roadmap misses {target}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_chapters_are_numbered_in_the_navigation(language: str) -> None:
    home = soup("" if language == "en" else "zh/")
    labels = [a.get_text(" ", strip=True) for a in home.select(".md-nav--primary a.md-nav__link[href*='chapters/']")]
    title = re.compile(r"(\d+\. |Interlude: |插曲：|Appendix: |附录：)")
    assert labels and all(title.match(label) for label in labels), labels
