"""Fixtures for tests of the built site: its pages, a local server, a headless Chromium."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.paths import SITE

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Flags that keep Chromium from contacting Google's services on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]


def base_path() -> str:
    """The URL path the site is built for (mkdocs.yml reads SITE_URL, default '/')."""
    path = urlparse(os.environ.get("SITE_URL", "http://127.0.0.1:8000/")).path or "/"
    return path if path.endswith("/") else path + "/"


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail("site/ is not built: run `mkdocs build --strict` first (make test does)")
    return SITE


class _Handler(SimpleHTTPRequestHandler):
    prefix = "/"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def translate_path(self, path: str) -> str:
        if path.startswith(self.prefix):
            path = "/" + path[len(self.prefix) :]
        else:
            path = "/__not_under_site_url__"
        return super().translate_path(path)


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    """Serve site/ on 127.0.0.1 under the path the site was built for; yield its root URL."""
    handler = functools.partial(type("H", (_Handler,), {"prefix": base_path()}), directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{base_path()}"
    httpd.shutdown()


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    executable = chromium_path()
    if executable is None:
        message = (
            "no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
            "or set CHROMIUM=/path/to/chrome"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("browser tests must run under CI=true, but " + message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server):  # type: ignore[no-untyped-def]
    """A fresh page whose requests to any host but 127.0.0.1 are recorded and blocked."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # TOC sidebar shown
    external: list[str] = []

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.external_requests = external  # type: ignore[attr-defined]
    page.set_default_timeout(15_000)
    yield page
    context.close()
