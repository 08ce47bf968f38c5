"""MkDocs hooks that make notebooks, Chinese anchors and offline math work together.

Each fix works around a measured behaviour of the pinned plugins (see the comments) and is
checked on the built site by ``tests/site``; ``tests/unit/test_site_hooks.py`` fails with a
clear message if an upgrade removes an attribute patched here (:data:`PATCHED`):

1. The i18n plugin re-creates every file as a plain ``File`` after mkdocs-jupyter has
   marked notebooks as pages, so ``.ipynb`` files would be copied verbatim (raw JSON) to
   ``.../index.html``. ``File.is_documentation_page`` is extended to count notebooks;
   mkdocs-jupyter still renders them because it matches pages by source path.
2. mkdocs-jupyter slugifies headings to ASCII (Chinese headings get ``id=""``) and
   nbconvert percent-encodes non-ASCII ids, while the table of contents uses another
   slugify. Both are routed through the one slugify the Markdown pages use
   (``pymdownx.slugs.slugify(case="lower")``), so ids and TOC links agree.
3. The glossary pages get their table from ``glossary/*.yml`` (``tools/glossary.py``), so
   the term pairs are written once for both languages.
4. MathJax is copied from the pinned ``django-static-mathjax`` wheel into the built site,
   so math renders with no request to another host, and nbconvert's MathJax 2 loader (with
   an empty URL) is removed from notebook pages.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

from markdown.extensions.toc import TocExtension
from mkdocs.structure.files import File
from pymdownx.slugs import slugify as _make_slugify


def _load_glossary_module():  # type: ignore[no-untyped-def]
    """``tools/glossary.py``, loaded from its path: MkDocs loads this hook by path too, and the
    repository's ``tools`` folder is not an installed package."""
    path = Path(__file__).resolve().parent / "glossary.py"
    spec = importlib.util.spec_from_file_location("book_tools_glossary", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_glossary = _load_glossary_module()
MARKER, load_terms, render_table = _glossary.MARKER, _glossary.load_terms, _glossary.render_table

SLUGIFY = _make_slugify(case="lower")

#: Every third-party attribute this module replaces or calls, as (module, attribute path).
#: A pinned upgrade that renames one would otherwise fail silently (e.g. notebooks published
#: as raw JSON, or Chinese headings without anchors).
PATCHED = [
    ("mkdocs.structure.files", "File.is_documentation_page"),
    ("mkdocs_jupyter.plugin", "_get_markdown_toc"),
    ("mkdocs_jupyter.plugin", "_get_nb_toc_tokens"),
    ("nbconvert.filters.markdown_mistune", "IPythonRenderer.heading"),
    ("nbconvert.filters.strings", "html2text"),
]


def check_patched_attributes() -> None:
    """Raise ``RuntimeError`` naming each attribute of :data:`PATCHED` that no longer exists."""
    missing = []
    for module_name, dotted in PATCHED:
        try:
            obj = importlib.import_module(module_name)
            for part in dotted.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{dotted}")
    if missing:
        raise RuntimeError(
            "tools/site_hooks.py patches attributes that the installed packages no longer have: "
            + ", ".join(missing)
            + ". An upgrade changed them; re-check the workaround before building the site."
        )


# -- 1. notebooks stay documentation pages under the i18n plugin ---------------------------


def _mark_notebooks_as_pages() -> None:
    """Make every ``File`` whose source is a notebook report itself as a page.

    Patching the class (rather than re-marking files after i18n's ``on_files``) matters:
    i18n decides which pages have alternates in other languages while it rebuilds the file
    list, and only documentation pages get them, so the language switcher on a notebook page
    would otherwise lead to the other language's home page.
    """
    if getattr(File, "_book_notebooks_are_pages", False):
        return
    original = File.is_documentation_page

    def is_documentation_page(self: File) -> bool:
        return self.src_uri.endswith(".ipynb") or original(self)

    File.is_documentation_page = is_documentation_page  # type: ignore[method-assign]
    File._book_notebooks_are_pages = True  # type: ignore[attr-defined]


# -- 2. one slugify for Markdown headings, notebook heading ids and the notebook TOC -------


def _patch_mkdocs_jupyter_slugs() -> None:
    import markdown
    import mkdocs_jupyter.plugin as nb_plugin
    from defusedxml import ElementTree
    from nbconvert.filters.markdown_mistune import IPythonRenderer
    from nbconvert.filters.strings import html2text

    if getattr(nb_plugin, "_book_slugs_patched", False):
        return

    def heading(self, text, level, **attrs):  # type: ignore[no-untyped-def]
        html = super(IPythonRenderer, self).heading(text, level, **attrs)
        try:
            element = ElementTree.fromstring(html)
        except Exception:  # not well-formed: leave the heading as nbconvert made it
            return html
        # Duplicate headings within one notebook are rejected by tests/site instead of
        # being numbered here, because nbconvert renders each cell on its own.
        slug = SLUGIFY(html2text(element), "-")
        element.set("id", slug)
        from xml.etree.ElementTree import Element

        anchor = Element("a", {"class": "anchor-link", "href": "#" + slug})
        anchor.text = "¶"
        element.append(anchor)
        return ElementTree.tostring(element, encoding="unicode")

    def markdown_toc(markdown_source: str, toc_depth: int):  # type: ignore[no-untyped-def]
        md = markdown.Markdown(
            extensions=["fenced_code", TocExtension(toc_depth=toc_depth, slugify=SLUGIFY)]
        )
        md.convert(markdown_source)
        return md.toc_tokens

    def nb_toc_tokens(fpath: str, toc_depth: int):  # type: ignore[no-untyped-def]
        # mkdocs-jupyter builds the TOC from nbconvert's Markdown after deleting every
        # inline code span, so "Clip after `backward()`" got a TOC link without "backward"
        # while the heading id kept it. Read the Markdown cells as written instead.
        import nbformat

        notebook = nbformat.read(fpath, as_version=4)
        source = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
        tokens = markdown_toc(source, toc_depth)
        title = next((t["name"] for t in tokens if t["level"] == 1), None)
        return tokens, title

    IPythonRenderer.heading = heading
    nb_plugin._get_markdown_toc = markdown_toc
    nb_plugin._get_nb_toc_tokens = nb_toc_tokens
    nb_plugin._book_slugs_patched = True


def on_config(config):  # type: ignore[no-untyped-def]
    check_patched_attributes()
    _mark_notebooks_as_pages()
    _patch_mkdocs_jupyter_slugs()
    return config


# -- 3. the glossary table, from glossary/*.yml ------------------------------------------------


def on_page_markdown(markdown: str, page, config, files) -> str:  # type: ignore[no-untyped-def]
    if MARKER not in markdown:
        return markdown
    language = page.file.src_uri.split("/", 1)[0]
    return markdown.replace(MARKER, render_table(load_terms(), language))


# -- 4. MathJax served by the site itself ---------------------------------------------------

# nbconvert's template adds a MathJax 2 loader with an empty URL (an empty <script src="">
# re-requests the page) and a MathJax 2 configuration; the site's own MathJax 3 typesets
# notebook math instead (docs/assets/javascripts/mathjax-config.js).
_NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL
)


def on_post_page(output: str, page, config) -> str:  # type: ignore[no-untyped-def]
    return _NBCONVERT_MATHJAX.sub("", output)


_MATHJAX_PARTS = [
    "tex-chtml.js",
    "input",
    "output",
    "ui",
    "a11y",
    "adaptors",
    "sre",
    "core.js",
    "startup.js",
    "loader.js",
]


def _mathjax_es5() -> Path:
    import mathjax  # the django-static-mathjax wheel: MathJax 3.2.2, Apache-2.0

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def on_post_build(config) -> None:  # type: ignore[no-untyped-def]
    _copy_mathjax(config)


def _copy_mathjax(config) -> None:  # type: ignore[no-untyped-def]
    source = _mathjax_es5()
    target = Path(config.site_dir) / "assets" / "mathjax"
    if (target / "tex-chtml.js").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for part in _MATHJAX_PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target / part)
    shutil.copy2(source.parent / "LICENSE", target / "LICENSE")
