"""Offline set-up for machines without internet access (the book's build machines).

tiktoken downloads GPT-2's vocabulary on first use. Where ``../shared/tiktoken-cache`` exists
beside the checkout (the build machines), a private copy of it becomes tiktoken's cache, so no
test or notebook needs the network. Elsewhere nothing changes and tiktoken downloads as usual.
tiktoken may delete or write files in its cache, hence the copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SHARED_CACHE = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken-cache"


def ensure_tiktoken_cache() -> str | None:
    """Point ``TIKTOKEN_CACHE_DIR`` at a copy of the shared cache; return the directory used."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if not SHARED_CACHE.is_dir():
        return None
    target = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    for item in SHARED_CACHE.iterdir():
        if item.is_file() and item.name != "README.md":
            shutil.copyfile(item, target / item.name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    return str(target)
