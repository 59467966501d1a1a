"""PrefLab models."""
