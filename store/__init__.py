"""PrefLab's DuckDB store: the only package that speaks SQL."""

from .db import Store
from .queue_queries import Progress
from .rows import LabelRow, ModelRow, PromptRow, TripleRow
from .work_queries import JobRow, NewGeneration, PairView, VerdictRow

__all__ = [
    "JobRow",
    "LabelRow",
    "ModelRow",
    "NewGeneration",
    "PairView",
    "Progress",
    "PromptRow",
    "Store",
    "TripleRow",
    "VerdictRow",
]
