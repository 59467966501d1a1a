"""Fixtures for the robustness tests: real headless Chromium (Debian's package), never `playwright install`."""

from __future__ import annotations

import os
import shutil

import pytest

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
    """A Playwright Chromium browser; skips without one unless PREFLAB_REQUIRE_BROWSER=1."""
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


@pytest.fixture
def page(chromium):
    """A fresh page that records page errors (`page.js_errors`) and dialogs (`page.dialogs`, dismissed)."""
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
    page.js_errors = errors
    page.dialogs = dialogs
    yield page
    context.close()
