"""What the Data tab calls: imports (the demo prompts, a user's file), previews and labelling stats."""

from __future__ import annotations

import logging
from pathlib import Path

from annotate.importer import ImportReport, import_prompts, preview_rows
from annotate.stats import format_stats, labelling_stats

log = logging.getLogger(__name__)

DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "incidents.jsonl"


class DataService:
    """Imports and statistics over the store."""

    def __init__(self, store):
        self.store = store

    def load_demo(self) -> ImportReport:
        """Import the shipped incident-triage prompts (re-running adds nothing)."""
        return import_prompts(self.store, str(DEMO_PROMPTS))

    def import_file(self, path: str, *, skip_bad: bool = False) -> ImportReport:
        return import_prompts(self.store, path, skip_bad=skip_bad)

    def preview(self, path: str, n: int = 5) -> list[dict]:
        return preview_rows(path, n)

    def stats(self) -> dict:
        return labelling_stats(self.store.label_frame(), self.store.verdict_frame())

    def stats_text(self) -> str:
        return format_stats(self.store.counts(), self.stats())
