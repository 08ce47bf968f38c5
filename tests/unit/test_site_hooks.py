"""The site's patches to mkdocs-jupyter (tools/site_hooks.py): notebook TOC links match heading ids."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools import site_hooks

HEADINGS = [
    "# 2. Title",
    "### 6.1 Clip after `backward()` and before `optimizer.step()`",
    "## 6.1 在 `backward()` 之后、`optimizer.step()` 之前裁剪",
]


@pytest.fixture(scope="module")
def patched():
    site_hooks.on_config({})
    import mkdocs_jupyter.plugin as nb_plugin
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return nb_plugin, markdown2html_mistune


def test_notebook_toc_links_equal_heading_ids(patched, tmp_path: Path) -> None:
    nb_plugin, markdown2html = patched
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(h) for h in HEADINGS]
    notebook.cells.insert(1, nbformat.v4.new_code_cell("# a comment, not a heading\nx = 1"))
    notebook.cells.append(nbformat.v4.new_markdown_cell("```python\n# also not a heading\n```"))
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)

    tokens, title = nb_plugin._get_nb_toc_tokens(str(path), 3)

    def ids(nodes):
        for node in nodes:
            yield node["id"]
            yield from ids(node["children"])

    heading_ids = [re.search(r'id="([^"]+)"', markdown2html(h)).group(1) for h in HEADINGS]
    assert list(ids(tokens)) == heading_ids
    assert heading_ids[1] == "61-clip-after-backward-and-before-optimizerstep"
    assert title == "2. Title"


def test_every_patched_attribute_exists_in_the_pinned_packages() -> None:
    """Fails loudly, naming the attribute, if an upgrade of mkdocs, mkdocs-jupyter or nbconvert
    removes something tools/site_hooks.py replaces."""
    site_hooks.check_patched_attributes()


def test_a_missing_patched_attribute_is_reported_by_name(monkeypatch) -> None:
    monkeypatch.setattr(
        site_hooks, "PATCHED", [*site_hooks.PATCHED, ("mkdocs_jupyter.plugin", "_gone_in_a_future_release")]
    )
    with pytest.raises(RuntimeError, match=r"mkdocs_jupyter\.plugin\._gone_in_a_future_release"):
        site_hooks.check_patched_attributes()
