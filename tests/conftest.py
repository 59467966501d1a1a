"""Make the repository root importable (errors, settings, packages) without installing it."""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Nothing in the suite may reach a hub or phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    """One Playwright Chromium for the whole session (two sync Playwright instances cannot coexist).

    Debian's package, never `playwright install`; skips without it unless PREFLAB_REQUIRE_BROWSER=1.
    """
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("PREFLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("PREFLAB_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
