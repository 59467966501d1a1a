"""Real headless Chromium (Debian's package) driven by Playwright; never `playwright install`."""

from __future__ import annotations

import pytest


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
