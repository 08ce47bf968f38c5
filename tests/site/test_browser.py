"""The built site in a real browser: headless Chromium driven by Playwright.

Runs against site/ served on 127.0.0.1. Without Chromium these tests skip with a message
saying how to install it; under CI=true they fail instead of skipping.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK_EN = "chapters/00-small-gpt/"
NOTEBOOK_ZH = "zh/chapters/00-small-gpt/"


def open_page(page, server: str, url: str):  # type: ignore[no-untyped-def]
    page.goto(server + url, wait_until="networkidle")
    return page


def switch_language(page, language: str) -> None:  # type: ignore[no-untyped-def]
    page.hover(".md-header__option .md-select")
    page.click(f'.md-select__link[hreflang="{language}"]')
    page.wait_for_load_state("networkidle")


def test_language_switcher_on_a_notebook_page_both_ways(page, server: str) -> None:
    open_page(page, server, NOTEBOOK_EN)
    assert page.locator("html").get_attribute("lang") == "en"
    switch_language(page, "zh")
    assert page.url == server + NOTEBOOK_ZH
    assert page.locator("html").get_attribute("lang") == "zh"
    assert "本书使用的小型 GPT" in page.locator("h1").first.inner_text()
    switch_language(page, "en")
    assert page.url == server + NOTEBOOK_EN
    assert "The small GPT used in this book" in page.locator("h1").first.inner_text()
    assert page.external_requests == []


def search(page, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    page.fill("input.md-search__input", query)
    page.press("input.md-search__input", "End")  # Material reads the query on key-up
    page.wait_for_selector(".md-search-result__item a", timeout=15_000)
    return page.eval_on_selector_all(".md-search-result__item a", "links => links.map(a => a.href)")


@pytest.mark.parametrize(
    ("start", "query", "expected"),
    [
        ("zh/", "因果注意力", NOTEBOOK_ZH),
        ("zh/", "交叉熵", NOTEBOOK_ZH),
        ("", "causal mask", NOTEBOOK_EN),
        ("", "parameters", NOTEBOOK_EN),
    ],
)
def test_search_finds_the_expected_page(page, server: str, start: str, query: str, expected: str) -> None:
    open_page(page, server, start)
    hits = [h.split("#")[0].split("?")[0] for h in search(page, query)]
    assert server + expected in hits, f"{query!r} -> {hits[:5]}"
    assert page.external_requests == []


def test_a_chinese_query_is_split_into_words(page, server: str) -> None:
    """因果注意力 must also find the notation page, which mentions 注意力 but never 因果."""
    open_page(page, server, "zh/")
    hits = [h.split("#")[0].split("?")[0] for h in search(page, "因果注意力")]
    assert server + NOTEBOOK_ZH in hits
    assert server + "zh/notation/" in hits, hits


@pytest.mark.parametrize("url", ["notation/", "zh/notation/", NOTEBOOK_EN, NOTEBOOK_ZH])
def test_math_is_typeset(page, server: str, url: str) -> None:
    open_page(page, server, url)
    page.wait_for_selector("body[data-math-typeset='done']", state="attached")
    assert page.locator("mjx-container").count() > 0
    # Visible prose only: code blocks and outputs may legitimately contain $ or \(.
    prose = page.evaluate(
        """() => {
            const root = document.querySelector('.md-content').cloneNode(true);
            root.querySelectorAll('script, style, pre, code, mjx-container, .jp-OutputArea')
                .forEach(e => e.remove());
            return root.textContent;
        }"""
    )
    for raw in ("$$", "\\(", "\\[", "\\frac", "\\mathrm"):
        assert raw not in prose, f"{url}: untypeset math {raw!r} left in the page"
    assert not re.search(r"\$[^$\s][^$]*\$", prose), f"{url}: inline $...$ left untypeset"
    errors = page.locator("mjx-merror").count()
    assert errors == 0, f"{url}: {errors} MathJax errors"
    assert page.external_requests == []


@pytest.mark.parametrize("url", ["", "zh/", NOTEBOOK_EN, NOTEBOOK_ZH, "glossary/", "zh/glossary/"])
def test_every_toc_anchor_resolves(page, server: str, url: str) -> None:
    open_page(page, server, url)
    missing = page.evaluate(
        """() => [...document.querySelectorAll('nav.md-nav--secondary a.md-nav__link')]
              .map(a => new URL(a.href).hash.slice(1))
              .filter(h => !h || !document.getElementById(decodeURIComponent(h)))"""
    )
    assert missing == [], f"{url}: TOC anchors without target: {missing}"


def test_clicking_a_chinese_toc_entry_scrolls_to_its_heading(page, server: str) -> None:
    open_page(page, server, NOTEBOOK_ZH)
    link = page.locator(".md-sidebar--secondary nav.md-nav--secondary a.md-nav__link", has_text="数据").first
    link.click()
    page.wait_for_timeout(300)
    fragment = page.evaluate("() => decodeURIComponent(location.hash.slice(1))")
    assert re.search(r"[\u4e00-\u9fff]", fragment), fragment
    in_view = page.evaluate(
        """id => { const r = document.getElementById(id).getBoundingClientRect();
                   return r.top >= 0 && r.top < window.innerHeight; }""",
        fragment,
    )
    assert in_view


def test_no_request_leaves_localhost(page, server: str) -> None:
    for url in ["", "zh/", NOTEBOOK_EN, NOTEBOOK_ZH, "notation/", "zh/glossary/", "license/"]:
        open_page(page, server, url)
    search(page, "注意力")
    page.wait_for_load_state("networkidle")
    assert page.external_requests == []


def test_dark_mode_toggle_and_code_copy_button(page, server: str) -> None:
    open_page(page, server, NOTEBOOK_EN)
    before = page.locator("body").get_attribute("data-md-color-scheme")
    page.click("form[data-md-component='palette'] label:visible")
    after = page.locator("body").get_attribute("data-md-color-scheme")
    assert {before, after} == {"default", "slate"}
    # Notebook code cells carry mkdocs-jupyter's copy button, Markdown code blocks Material's.
    assert page.locator(".jp-CodeCell clipboard-copy").count() > 0
    open_page(page, server, "")
    page.wait_for_selector(".md-content pre [data-md-type='copy']", state="attached")


@pytest.mark.parametrize("url", [NOTEBOOK_EN, NOTEBOOK_ZH])
def test_notebook_code_fits_the_column_on_a_laptop_screen(page, server: str, url: str) -> None:
    """At 1366 x 768 (the most common laptop size) no code cell scrolls sideways and printed
    output wraps inside the column."""
    page.set_viewport_size({"width": 1366, "height": 768})
    open_page(page, server, url)
    overflowing = page.eval_on_selector_all(
        ".jp-CodeCell .highlight-ipynb pre, .jp-OutputArea-output pre",
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.textContent.split('\\n').sort((a, b) => b.length - a.length)[0])",
    )
    assert overflowing == [], f"{url}: lines wider than the column: {overflowing[:3]}"
