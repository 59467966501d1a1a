"""Typed reads and writes over the data model; `Store` mixes these in."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import duckdb

from common.errors import StoreError
from common.serving import Serving
from common.vocab import Decision, LabelSource, ModelKind, Split, values

from .base import QueryMixin, check, check_messages
from .rows import LabelRow, ModelRow, PromptRow, TripleRow, dumps

log = logging.getLogger(__name__)

# The CHECK constraints' values, checked first so that a bad value fails with a readable line.
MODEL_KINDS = values(ModelKind)
SPLITS = values(Split)
DECISIONS = values(Decision)
LABEL_SOURCES = values(LabelSource)


def content_hash(messages: list[dict]) -> str:
    """sha256 of the canonical JSON of a prompt's messages: the prompt's identity."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Queries(QueryMixin):
    """Models, prompts, generations, pairs and labels."""

    # -- models ---------------------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        base: str,
        adapters: list[str],
        kind: str,
        fingerprint: str | None = None,
        *,
        serving: Serving | None = None,
    ) -> ModelRow:
        """Register a new variant (local weights and/or an endpoint); an existing name is an error."""
        check("model kind", kind, MODEL_KINDS)
        served = (serving or Serving()).columns()
        if bool(served["endpoint"]) != bool(served["served_model"]):
            raise StoreError("an endpoint needs its served model id, and a served model id its endpoint")

        def insert(cur: duckdb.DuckDBPyConnection) -> ModelRow:
            existing = self._model(cur, name)
            if existing is not None:
                raise StoreError(
                    f"model {name!r} already exists (base {existing.base}, kind {existing.kind}); "
                    "pick another name"
                )
            columns = ", ".join(["name, base, adapters, kind, fingerprint", *served])
            row = cur.execute(
                f"INSERT INTO models ({columns}) VALUES ({', '.join('?' * (5 + len(served)))}) "
                f"RETURNING {ModelRow.COLUMNS}",
                [name, base, dumps(list(adapters)), kind, fingerprint, *served.values()],
            ).fetchone()
            return ModelRow.from_row(row)

        try:
            return self.write(insert)
        except duckdb.ConstraintException as exc:  # another thread won the race for the name
            raise StoreError(f"model {name!r} already exists; pick another name") from exc

    def ensure_model(self, name: str, base: str, adapters: list[str], kind: str) -> ModelRow:
        """The variant called `name`, inserted first if missing (an existing row wins)."""
        check("model kind", kind, MODEL_KINDS)

        def upsert(cur: duckdb.DuckDBPyConnection) -> ModelRow:
            cur.execute(
                "INSERT INTO models (name, base, adapters, kind) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [name, base, dumps(list(adapters)), kind],
            )
            return self._model(cur, name)  # type: ignore[return-value]

        row = self.write(upsert)
        if (row.base, row.adapters, row.kind) != (base, list(adapters), kind):
            log.warning(
                "model %r already exists as %s + %s (%s); keeping it", name, row.base, row.adapters, row.kind
            )
        return row

    def get_model(self, name: str) -> ModelRow | None:
        """The variant called `name`, or None."""
        return self._model(self.cursor(), name)

    def list_models(self) -> list[ModelRow]:
        """Every variant, oldest first."""
        return ModelRow.fetch_all(self.cursor(), "ORDER BY id")

    def set_model_fingerprint(self, name: str, fingerprint: str) -> ModelRow:
        """Record the weights' fingerprint of a variant."""

        def update(cur: duckdb.DuckDBPyConnection) -> ModelRow:
            # No UPDATE ... RETURNING: DuckDB then trips the FK of rows that reference the model.
            cur.execute("UPDATE models SET fingerprint = ? WHERE name = ?", [fingerprint, name])
            row = self._model(cur, name)
            if row is None:
                raise StoreError(f"no model named {name!r}; see `launch.py models list`")
            return row

        return self.write(update)

    def set_model_endpoint(self, name: str, serving: Serving) -> ModelRow:
        """Give an existing variant without an endpoint one (its local weights stay for training)."""
        if not serving.endpoint or not serving.served_model:
            raise StoreError("an endpoint needs both its URL and its served model id")
        served = serving.columns()

        def update(cur: duckdb.DuckDBPyConnection) -> ModelRow:
            row = self._model(cur, name)
            if row is None:
                raise StoreError(f"no model named {name!r}; see `launch.py models list`")
            if row.endpoint:
                raise StoreError(f"model {name!r} is already served at {row.endpoint}; pick another name")
            # No UPDATE ... RETURNING: DuckDB then trips the FK of rows that reference the model.
            assignments = ", ".join(f"{column} = ?" for column in served)
            cur.execute(f"UPDATE models SET {assignments} WHERE name = ?", [*served.values(), name])
            return self._model(cur, name)  # type: ignore[return-value]

        return self.write(update)

    @staticmethod
    def _model(cur: duckdb.DuckDBPyConnection, name: str) -> ModelRow | None:
        return ModelRow.fetch_one(cur, "WHERE name = ?", [name])

    # -- prompts and generations ----------------------------------------------------------------

    def add_prompt(
        self, messages: list[dict], source: str, split: str, gold: Any = None, meta: dict | None = None
    ) -> int | None:
        """Insert a prompt and return its id, or None when the same messages are already stored."""
        check("split", split, SPLITS)
        check_messages(messages)
        digest = content_hash(messages)

        def insert(cur: duckdb.DuckDBPyConnection) -> int | None:
            row = cur.execute(
                "INSERT INTO prompts (content_hash, messages, source, split, gold, meta) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING RETURNING id",
                [digest, dumps(messages), source, split, dumps(gold), dumps(meta)],
            ).fetchone()
            return None if row is None else int(row[0])

        try:
            return self.write(insert)
        except duckdb.ConstraintException:
            # Another thread committed the same prompt after our transaction began: DuckDB then refuses the row
            # instead of skipping it. A fresh transaction sees that prompt, so ON CONFLICT skips it.
            return self.write(insert)

    def get_prompt(self, prompt_id: int) -> PromptRow | None:
        """The prompt with this id, or None."""
        return PromptRow.fetch_one(self.cursor(), "WHERE id = ?", [prompt_id])

    def add_generation(
        self,
        prompt_id: int,
        model_id: int,
        text: str,
        *,
        params: dict | None = None,
        seed: int | None = None,
        n_tokens: int | None = None,
        seconds: float | None = None,
    ) -> int:
        """Store one response and return its id."""

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            row = cur.execute(
                "INSERT INTO generations (prompt_id, model_id, params, seed, text, n_tokens, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [prompt_id, model_id, dumps(params), seed, text, n_tokens, seconds],
            ).fetchone()
            return int(row[0])

        return self.write(insert)

    def add_pair(self, prompt_id: int, gen_a: int, gen_b: int) -> int:
        """Pair two responses to one prompt and return the pair's id."""

        def insert(cur: duckdb.DuckDBPyConnection) -> int:
            row = cur.execute(
                "INSERT INTO pairs (prompt_id, gen_a, gen_b) VALUES (?, ?, ?) RETURNING id",
                [prompt_id, gen_a, gen_b],
            ).fetchone()
            return int(row[0])

        return self.write(insert)

    # -- labels ---------------------------------------------------------------------------------

    def add_label(
        self,
        pair_id: int,
        annotator: str,
        decision: str,
        *,
        source: str = LabelSource.HUMAN.value,
        **fields: Any,
    ) -> int:
        """Record a label; it supersedes the annotator's earlier live label on the same pair.

        `fields`: left_gen, right_gen, seed, suggestion_shown, suggestion, chosen_edit, note, seconds_spent.
        """
        check("decision", decision, DECISIONS)
        check("label source", source, LABEL_SOURCES)
        return self.write(lambda cur: self._insert_label(cur, pair_id, annotator, decision, source, **fields))

    @staticmethod
    def _insert_label(
        cur: duckdb.DuckDBPyConnection,
        pair_id: int,
        annotator: str,
        decision: str,
        source: str,
        *,
        left_gen: int | None = None,
        right_gen: int | None = None,
        seed: int | None = None,
        suggestion_shown: bool = False,
        suggestion: str | None = None,
        chosen_edit: str | None = None,
        note: str | None = None,
        seconds_spent: float | None = None,
    ) -> int:
        """Insert a label inside the caller's transaction and supersede the annotator's older live one."""
        new_id = cur.execute(
            "INSERT INTO labels (pair_id, annotator, source, left_gen, right_gen, seed, decision, "
            "suggestion_shown, suggestion, chosen_edit, note, seconds_spent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [
                pair_id,
                annotator,
                source,
                left_gen,
                right_gen,
                seed,
                decision,
                suggestion_shown,
                suggestion,
                chosen_edit,
                note,
                seconds_spent,
            ],
        ).fetchone()[0]
        cur.execute(
            "UPDATE labels SET superseded_by = ? "
            "WHERE pair_id = ? AND annotator = ? AND superseded_by IS NULL AND id <> ?",
            [new_id, pair_id, annotator, new_id],
        )
        return int(new_id)

    def withdraw_label(self, label_id: int) -> None:
        """Undo a vote: the label points at itself as superseded, so nothing replaces it."""

        def update(cur: duckdb.DuckDBPyConnection) -> None:
            if not self._withdraw(cur, label_id):
                raise StoreError(f"label {label_id} does not exist or was already superseded")

        self.write(update)

    @staticmethod
    def _withdraw(cur: duckdb.DuckDBPyConnection, label_id: int, annotator: str | None = None) -> int | None:
        """Withdraw a live label (of `annotator`, when given) in the caller's transaction; its pair, or None."""
        row = cur.execute(
            "SELECT pair_id FROM labels WHERE id = ? AND superseded_by IS NULL AND (? IS NULL OR annotator = ?)",
            [label_id, annotator, annotator],
        ).fetchone()
        if row is None:
            return None
        cur.execute("UPDATE labels SET superseded_by = id WHERE id = ?", [label_id])
        return int(row[0])

    def labels_for_pair(self, pair_id: int) -> list[LabelRow]:
        """Every label on a pair, superseded ones included, oldest first."""
        return LabelRow.fetch_all(self.cursor(), "WHERE pair_id = ? ORDER BY id", [pair_id])

    def preference_triples(self, *, split: str | None = None) -> list[TripleRow]:
        """The training triples (see the view in 0001_initial.sql), optionally of one split."""
        if split is not None:
            check("split", split, SPLITS)
        return TripleRow.fetch_all(
            self.cursor(), "WHERE ? IS NULL OR split = ? ORDER BY label_id", [split, split]
        )
