"""PrefLab's DuckDB store: the only package that speaks SQL."""

from .db import Store
from .rows import LabelRow, ModelRow, PromptRow, TripleRow

__all__ = ["LabelRow", "ModelRow", "PromptRow", "Store", "TripleRow"]
