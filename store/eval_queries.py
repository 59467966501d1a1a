"""Queries for the automatic eval: eval runs with their scores, and the frames its report reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from common.errors import StoreError
from common.vocab import LabelSource

from .base import QueryMixin, limit_param
from .rows import StoredRow, dumps


@dataclass(frozen=True)
class EvalRunRow(StoredRow):
    """One automatic eval: the variants in display order, the prompt set and what it was run with."""

    id: int
    variants: list[str]
    prompt_set: str
    config: dict
    created_at: datetime

    TABLE = "eval_runs"
    COLUMNS = "id, variants, prompt_set, config, created_at"
    JSON = {"variants": list, "config": dict}


class EvalQueries(QueryMixin):
    """Eval runs and scores."""

    def add_eval_run(
        self,
        variants: Sequence[str],
        prompt_set: str,
        config: dict,
        scores: Sequence[tuple[int, int, str, float | None]],
    ) -> int:
        """Store an eval run and its (prompt_id, model_id, scorer, value) rows in one transaction; its id."""
        rows = list(scores)

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            run_id = int(
                cur.execute(
                    "INSERT INTO eval_runs (variants, prompt_set, config) VALUES (?, ?, ?) RETURNING id",
                    [dumps(list(variants)), prompt_set, dumps(config)],
                ).fetchone()[0]
            )
            if rows:
                # Lists in, one INSERT out: a row per execute would cost a round trip per score.
                cur.execute(
                    "INSERT INTO eval_scores (eval_run_id, prompt_id, model_id, scorer, value) "
                    "SELECT ?, unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[])",
                    [
                        run_id,
                        [int(r[0]) for r in rows],
                        [int(r[1]) for r in rows],
                        [str(r[2]) for r in rows],
                        [None if r[3] is None else float(r[3]) for r in rows],
                    ],
                )
            return run_id

        return self.write(insert)

    def get_eval_run(self, eval_run_id: int) -> EvalRunRow | None:
        """The eval run with this id, or None."""
        return EvalRunRow.fetch_one(self.cursor(), "WHERE id = ?", [eval_run_id])

    def list_eval_runs(self, limit: int | None = None) -> list[EvalRunRow]:
        """Eval runs, newest first."""
        return EvalRunRow.fetch_all(self.cursor(), "ORDER BY id DESC LIMIT ?", [limit_param(limit)])

    def eval_scores_frame(self, eval_run_id: int):
        """A DataFrame (prompt_id, model_id, variant, scorer, value) of one eval run."""
        if self.get_eval_run(eval_run_id) is None:
            raise StoreError(f"no eval run with id {eval_run_id}")
        return self._frame(
            "SELECT s.prompt_id, s.model_id, m.name AS variant, s.scorer, s.value FROM eval_scores AS s "
            "JOIN models AS m ON m.id = s.model_id WHERE s.eval_run_id = ? "
            "ORDER BY s.prompt_id, s.model_id, s.scorer",
            [eval_run_id],
        )

    def eval_battle_frame(self):
        """Arena votes with variant names: battle_id, prompt_id, left, right, vote, voter."""
        return self._frame(
            "SELECT b.id AS battle_id, b.prompt_id, ml.name AS left, mr.name AS right, b.vote, b.voter "
            "FROM battles AS b "
            "JOIN generations AS gl ON gl.id = b.left_gen JOIN models AS ml ON ml.id = gl.model_id "
            "JOIN generations AS gr ON gr.id = b.right_gen JOIN models AS mr ON mr.id = gr.model_id "
            "ORDER BY b.id"
        )

    def eval_judge_label_count(self, annotator: str, *, before: datetime | None = None) -> int:
        """Live judge-sourced labels by `annotator` (e.g. 'judge:rule'), optionally created before a time."""
        row = self._row(
            "SELECT count(*) FROM labels WHERE source = ? AND annotator = ? "
            "AND superseded_by IS NULL AND (?::TIMESTAMP IS NULL OR created_at < ?::TIMESTAMP)",
            [LabelSource.JUDGE, annotator, before, before],
        )
        return int(row[0])
