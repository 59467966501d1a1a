"""PrefLab annotate."""
