"""Frames for statistics: live labels and judge verdicts, as pandas DataFrames for pure rating functions."""

from __future__ import annotations

from .base import QueryMixin


class StatsQueries(QueryMixin):
    """Read-only frames."""

    def label_frame(self):
        """Live labels (not superseded): pair_id, annotator, source, decision, suggestion, shown, seconds."""
        return self._frame(
            "SELECT id AS label_id, pair_id, annotator, source, decision, suggestion, suggestion_shown, "
            "seconds_spent, chosen_edit IS NOT NULL AS edited, created_at FROM labels "
            "WHERE superseded_by IS NULL ORDER BY id"
        )

    def verdict_frame(self):
        """The newest verdict per (pair, judge, model, rubric, order), with token usage."""
        return self._frame(
            "SELECT pair_id, judge, model, rubric_hash, position_order, winner, confidence, "
            "CAST(usage->>'input_tokens' AS BIGINT) AS input_tokens, "
            "CAST(usage->>'output_tokens' AS BIGINT) AS output_tokens, batch_id FROM judge_verdicts "
            "QUALIFY row_number() OVER (PARTITION BY pair_id, judge, model, rubric_hash, position_order "
            "ORDER BY id DESC) = 1 ORDER BY pair_id, position_order"
        )
