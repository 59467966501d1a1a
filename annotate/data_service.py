"""What the Data tab calls: imports (demo prompts, prompt or preference files), exports and statistics."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from annotate.export import ExportFilters, export_dataset
from annotate.importer import import_prompts
from annotate.pref_import import import_preferences, preview_preferences
from annotate.stats import format_stats, labelling_stats
from common.access import Access, Role

log = logging.getLogger(__name__)

DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "incidents.jsonl"


class DataService:
    """Imports, exports and statistics over the store; every import and export needs the admin role."""

    def __init__(
        self, store, exports_dir: Path, *, access: Access | None = None, downloads_dir: Path | None = None
    ):
        self.store = store
        self.exports_dir = Path(exports_dir)
        self.access = access or Access()
        # Files made for a page's download go to the served folder, each in a folder no one else can guess.
        self.downloads_dir = Path(downloads_dir) if downloads_dir else None

    def load_demo(self, *, user: str | None = None):
        """Import the shipped incident-triage prompts (re-running adds nothing)."""
        self.access.require(user, Role.ADMIN)
        return import_prompts(self.store, str(DEMO_PROMPTS))

    def preview(self, path: str, fmt: str = "auto", n: int = 5, *, user: str | None = None):
        """The detected format and the first rows as they would be stored (prompt files included)."""
        from dataclasses import replace

        self.access.require(user, Role.ADMIN)

        from annotate.importer import preview_rows

        seen = preview_preferences(path, n, format=fmt)
        if seen.format == "prompts" and not seen.rows:
            return replace(seen, rows=preview_rows(path, n))
        return seen

    def import_file(
        self,
        path: str,
        *,
        fmt: str = "auto",
        skip_bad: bool = False,
        review: bool = False,
        user: str | None = None,
    ):
        """Prompts or preference data, by the detected (or forced) format; one transaction either way."""
        self.access.require(user, Role.ADMIN)
        detected = self.preview(path, fmt, n=1).format if fmt == "auto" else fmt
        if detected == "prompts":
            return import_prompts(self.store, path, skip_bad=skip_bad)
        report = import_preferences(self.store, path, format=fmt, skip_bad=skip_bad)
        if review:
            self.store.queue_model_pairs_for_review(report.model)
        return report

    def export(self, fmt: str, filters: ExportFilters, *, user: str | None = None):
        """Write the confirmed triples (annotators pseudonymised) to a new file for download."""
        self.access.require(user, Role.ADMIN)
        if self.downloads_dir is not None:
            import secrets

            folder = self.downloads_dir / secrets.token_urlsafe(16)
        else:
            folder = self.exports_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"preferences-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"
        return export_dataset(self.store, path, format=fmt, filters=filters)

    def hub_dry_run(self, repo_id: str, filters: ExportFilters, *, user: str | None = None):
        """Write exactly the folder a Hub push would upload (data/*.parquet + README.md card), without pushing."""
        from annotate.hub import build_dataset_folder, check_repo_id

        self.access.require(user, Role.ADMIN)
        repo_id = check_repo_id(repo_id)
        out = self.exports_dir / f"hub-{repo_id.replace('/', '--')}-{time.strftime('%Y%m%d-%H%M%S')}"
        return build_dataset_folder(self.store, out, filters, name=repo_id)

    def stats(self) -> dict:
        return labelling_stats(self.store.label_frame(), self.store.verdict_frame())

    def stats_text(self) -> str:
        return format_stats(self.store.counts(), self.stats())
