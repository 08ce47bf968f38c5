"""Session set-up shared by every test, including nbval's notebook kernels (which inherit
this process's environment): an offline tiktoken cache where the build machine provides one."""

from tools.offline import ensure_tiktoken_cache


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    ensure_tiktoken_cache()
