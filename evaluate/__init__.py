"""PrefLab evaluate."""
