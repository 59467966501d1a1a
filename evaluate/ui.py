"""The Arena and Eval tabs, as webui/app.py builds them: evaluate/arena_ui.py and evaluate/eval_ui.py."""

from __future__ import annotations

from evaluate.arena_ui import build_arena_tab
from evaluate.arena_view import arena_empty_state
from evaluate.eval_ui import build_eval_tab, eval_empty_state

__all__ = ["arena_empty_state", "build_arena_tab", "build_eval_tab", "eval_empty_state"]
