"""Data in and out: bulk preference imports, the export frame with provenance, run lineage for cards."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from common.errors import StoreError
from common.vocab import Decision, LabelSource, ModelKind, Order

from .base import QueryMixin, check
from .import_queries import ImportCounts, json_column, registered, staging_table
from .queries import SPLITS, content_hash
from .rows import loads

log = logging.getLogger(__name__)

# Registered per cursor (so per thread) and removed after use; never a caller's string.
_STAGING = "preflab_pref_rows"
# Imported responses carry a generation cell naming their pair's content: a re-import finds it.
CELL_PREFIX = "import:"


def pair_key(prompt_hash: str, chosen: str, rejected: str) -> str:
    """The identity of an imported preference: prompt content, chosen and rejected text."""
    canonical = json.dumps([prompt_hash, chosen, rejected], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def imported_model_name(source: str) -> str:
    """The `imported` variant that stands for a source's responses."""
    return f"imported:{source}"


@dataclass(frozen=True)
class NewPreference:
    """One preference to import: a prompt, the chosen and the rejected response."""

    messages: list[dict]
    split: str
    chosen: str
    rejected: str
    chosen_params: dict | None = None
    rejected_params: dict | None = None
    meta: dict | None = None
    content_hash: str = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_hash", content_hash(self.messages))
        object.__setattr__(self, "key", pair_key(self.content_hash, self.chosen, self.rejected))


@dataclass(frozen=True)
class PreferenceCounts(ImportCounts):
    """What a bulk preference import stored: the prompt import's counts, new prompts and the variant."""

    new_prompts: int
    model: str


class DataQueries(QueryMixin):
    """Preference imports and export reads."""

    # -- import ---------------------------------------------------------------------------------

    def add_preferences_bulk(
        self, rows: Sequence[NewPreference], *, source: str, annotator: str
    ) -> PreferenceCounts:
        """Store prompts, both responses, a pair and an import label per row, all in one transaction."""
        unique: dict[str, NewPreference] = {}
        for row in rows:
            check("split", row.split, SPLITS)
            if row.chosen == row.rejected:
                raise StoreError("an imported pair needs two different responses")
            unique.setdefault(row.key, row)  # a repeat inside the file counts as a duplicate
        model_name = imported_model_name(source)
        if not unique:
            return PreferenceCounts(
                inserted=0, duplicates=len(rows), by_split={}, new_prompts=0, model=model_name
            )

        kept = list(unique.values())
        staged = staging_table(
            kept,
            chosen=[r.chosen for r in kept],
            rejected=[r.rejected for r in kept],
            chosen_params=json_column([r.chosen_params for r in kept]),
            rejected_params=json_column([r.rejected_params for r in kept]),
            chosen_cell=[f"{CELL_PREFIX}{r.key}:chosen" for r in kept],
            rejected_cell=[f"{CELL_PREFIX}{r.key}:rejected" for r in kept],
        )

        def insert(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, list[str]]:
            model_id = self._imported_model(cur, model_name, source)
            with registered(cur, _STAGING, staged):
                return self._insert_preferences(cur, model_id, source, annotator)

        new_prompts, inserted, splits = self.write(insert)
        counts = PreferenceCounts(
            inserted=inserted,
            duplicates=len(rows) - inserted,
            by_split=dict(Counter(splits)),
            new_prompts=new_prompts,
            model=model_name,
        )
        log.info(
            "imported %d preference pair(s) from %s (%d duplicate(s), %d new prompt(s))",
            counts.inserted,
            source,
            counts.duplicates,
            counts.new_prompts,
        )
        return counts

    @staticmethod
    def _imported_model(cur: duckdb.DuckDBPyConnection, name: str, source: str) -> int:
        cur.execute(
            "INSERT INTO models (name, base, adapters, kind) VALUES (?, ?, '[]', ?) "
            "ON CONFLICT (name) DO NOTHING",
            [name, source, ModelKind.IMPORTED],
        ).fetchall()  # DuckDB 2 refuses new work on a cursor with an unread result
        ((model_id, kind),) = cur.execute("SELECT id, kind FROM models WHERE name = ?", [name]).fetchall()
        if kind != ModelKind.IMPORTED:
            raise StoreError(f"model {name!r} exists as a {kind} variant; rename it to import {source}")
        return int(model_id)

    @staticmethod
    def _insert_preferences(
        cur: duckdb.DuckDBPyConnection, model_id: int, source: str, annotator: str
    ) -> tuple[int, int, list[str]]:
        """The set-based body of `add_preferences_bulk`; staging rows already stored are left alone."""
        # Prompts first (deduplicated by content; a stored prompt keeps its split and source).
        new_prompts = cur.execute(
            "INSERT INTO prompts (content_hash, messages, source, split, meta) "
            "SELECT s.content_hash, s.messages::JSON, ?, s.split, s.meta::JSON "
            f"FROM {_STAGING} AS s "
            "WHERE NOT EXISTS (SELECT 1 FROM prompts AS p WHERE p.content_hash = s.content_hash) "
            "QUALIFY row_number() OVER (PARTITION BY s.content_hash ORDER BY s.ord) = 1 "
            "ORDER BY s.ord ON CONFLICT (content_hash) DO NOTHING RETURNING id",
            [source],
        ).fetchall()
        # Only rows whose chosen cell is not stored for this source yet: a repeated import adds nothing.
        fresh = (
            f"FROM {_STAGING} AS s JOIN prompts AS p ON p.content_hash = s.content_hash "
            "WHERE NOT EXISTS (SELECT 1 FROM generations AS g WHERE g.model_id = $model "
            "AND g.prompt_id = p.id AND g.cell = s.chosen_cell)"
        )
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE preflab_pref_fresh AS "
            f"SELECT s.*, p.id AS prompt_id, p.split AS prompt_split {fresh}",
            {"model": model_id},
        ).fetchall()
        try:
            cur.execute(
                "INSERT INTO generations (prompt_id, model_id, params, text, cell) "
                "SELECT prompt_id, $model, params::JSON, text, cell FROM ("
                "SELECT ord, 0 AS side, prompt_id, chosen_params AS params, chosen AS text, chosen_cell AS cell "
                "FROM preflab_pref_fresh UNION ALL "
                "SELECT ord, 1, prompt_id, rejected_params, rejected, rejected_cell FROM preflab_pref_fresh"
                ") ORDER BY ord, side",
                {"model": model_id},
            ).fetchall()
            gens = (
                "FROM preflab_pref_fresh AS f "
                "JOIN generations AS gc ON gc.model_id = $model AND gc.prompt_id = f.prompt_id "
                "AND gc.cell = f.chosen_cell "
                "JOIN generations AS gr ON gr.model_id = $model AND gr.prompt_id = f.prompt_id "
                "AND gr.cell = f.rejected_cell"
            )
            pairs = cur.execute(
                f"INSERT INTO pairs (prompt_id, gen_a, gen_b) SELECT f.prompt_id, gc.id, gr.id {gens} "
                "ORDER BY f.ord RETURNING id",
                {"model": model_id},
            ).fetchall()
            # decision 'a': gen_a is the chosen response, so the view's chosen/rejected match the file.
            cur.execute(
                "INSERT INTO labels (pair_id, annotator, source, decision) "
                f"SELECT pairs.id, $annotator, $source, $decision {gens} "
                "JOIN pairs ON pairs.gen_a = gc.id AND pairs.gen_b = gr.id ORDER BY f.ord",
                {
                    "model": model_id,
                    "annotator": annotator,
                    "source": LabelSource.IMPORT,
                    "decision": Decision.A,
                },
            ).fetchall()
            splits = [s for (s,) in cur.execute("SELECT prompt_split FROM preflab_pref_fresh").fetchall()]
        finally:
            cur.execute("DROP TABLE IF EXISTS preflab_pref_fresh").fetchall()
        if len(pairs) != len(splits):
            raise StoreError(
                f"imported {len(pairs)} pair(s) for {len(splits)} new row(s); nothing was stored"
            )
        return len(new_prompts), len(pairs), splits

    # -- export ---------------------------------------------------------------------------------

    def export_frame(self):
        """Every training triple with its provenance: label, judge consensus, generation params."""
        frame = self._frame(
            """
            WITH v AS (
                SELECT * FROM judge_verdicts
                QUALIFY row_number() OVER (
                    PARTITION BY pair_id, judge, model, rubric_hash, position_order ORDER BY id DESC) = 1
            ), k AS (
                SELECT pair_id, judge, model, rubric_hash,
                    CASE WHEN count(winner) < 2 THEN NULL
                         WHEN min(winner) = max(winner) THEN min(winner) ELSE 'unsure' END AS verdict,
                    coalesce(max(rationale) FILTER (WHERE position_order = $first), max(rationale)) AS rationale
                FROM v GROUP BY pair_id, judge, model, rubric_hash
                QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY max(id) DESC) = 1
            )
            SELECT t.label_id, t.pair_id, t.prompt_id, t.split, t.prompt, t.chosen, t.rejected,
                t.edited, t.source, t.annotator, t.decision, t.created_at,
                l.suggestion_shown, l.suggestion, l.seconds_spent, pr.source AS prompt_source,
                mc.name AS chosen_model, mr.name AS rejected_model,
                gc.params AS chosen_params, gr.params AS rejected_params,
                gc.seed AS chosen_seed, gr.seed AS rejected_seed,
                k.judge, k.model AS judge_model, k.rubric_hash AS judge_rubric, k.verdict AS judge_verdict,
                k.rationale AS judge_rationale
            FROM preference_triples AS t
            JOIN labels AS l ON l.id = t.label_id
            JOIN prompts AS pr ON pr.id = t.prompt_id
            JOIN generations AS gc ON gc.id = t.chosen_gen
            JOIN generations AS gr ON gr.id = t.rejected_gen
            JOIN models AS mc ON mc.id = gc.model_id
            JOIN models AS mr ON mr.id = gr.model_id
            LEFT JOIN k ON k.pair_id = t.pair_id
            ORDER BY t.label_id
            """,
            {"first": Order.AB},
        )
        for column in ("prompt", "chosen_params", "rejected_params"):
            frame[column] = [loads(v) if isinstance(v, str) else None for v in frame[column]]
        return frame

    def models_by_name(self, names: Sequence[str]) -> dict[str, dict]:
        """name -> {base, adapters, kind} for these variants."""
        rows = self._rows(
            "SELECT name, base, adapters, kind FROM models WHERE list_contains(?, name)", [list(names)]
        )
        return {n: {"base": b, "adapters": loads(a) or [], "kind": k} for n, b, a, k in rows}

    # -- runs and evals (adapter cards) ---------------------------------------------------------

    def run_lineage(self, run_id: int) -> dict | None:
        """A training run (every column, JSON decoded) with its policy and reference variants, or None."""
        cur = self.cursor().execute(
            "SELECT r.*, m.name AS model, m.base AS base, m.adapters AS model_adapters, m.kind AS model_kind, "
            "rm.name AS ref_model FROM runs r LEFT JOIN models m ON m.id = r.model_id "
            "LEFT JOIN models rm ON rm.id = r.ref_model_id WHERE r.id = ?",
            [run_id],
        )
        row = cur.fetchone()
        if row is None:
            return None
        # r.* rather than named columns: later migrations add outcome columns (0003: error, result).
        out = dict(zip([d[0] for d in cur.description], row, strict=True))
        for key in ("config", "result", "model_adapters"):
            if isinstance(out.get(key), str):
                out[key] = loads(out[key])
        out["config"] = out.get("config") or {}
        out["model_adapters"] = out.get("model_adapters") or []
        return out

    def variants_of_run(self, run_id: int, adapter_path: str | None) -> list[str]:
        """Names of variants built on a run's adapter (by `@<run>` name or by adapter path)."""
        rows = self._rows("SELECT name, adapters FROM models ORDER BY id")
        names = []
        for name, adapters in rows:
            if name.endswith(f"@{run_id}") or (adapter_path and adapter_path in (loads(adapters) or [])):
                names.append(name)
        return names

    def latest_eval(self, variant_names: Sequence[str]) -> tuple[dict, Any] | None:
        """The newest eval run that includes one of these variants, with its mean score per variant."""
        if not variant_names:
            return None
        row = self._row(
            "SELECT e.id, e.variants, e.prompt_set, e.created_at FROM eval_runs e "
            "WHERE EXISTS (SELECT 1 FROM eval_scores s JOIN models m ON m.id = s.model_id "
            "WHERE s.eval_run_id = e.id AND list_contains(?, m.name)) "
            "OR len(list_intersect(CAST(e.variants AS VARCHAR[]), ?)) > 0 "
            "ORDER BY e.id DESC LIMIT 1",
            [list(variant_names), list(variant_names)],
        )
        if row is None:
            return None
        info = {"id": row[0], "variants": loads(row[1]) or [], "prompt_set": row[2], "created_at": row[3]}
        scores = self._frame(
            "SELECT m.name AS variant, s.scorer, avg(s.value) AS mean, count(s.value) AS n "
            "FROM eval_scores s JOIN models m ON m.id = s.model_id WHERE s.eval_run_id = ? "
            "GROUP BY ALL ORDER BY m.name, s.scorer",
            [info["id"]],
        )
        return info, scores
