"""PrefLab train."""
