"""PrefLab store."""
