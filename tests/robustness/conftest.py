"""Fixtures for the robustness tests: real headless Chromium (Debian's package), never `playwright install`."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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
