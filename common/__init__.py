"""Small shared pieces every package may import: errors, settings and paths, roles, limits, the vocabulary, flags,
seams, and `context`, the composition root that builds the real clients (importing them inside `build_context`).
Nothing here imports the UI, a model or the database at module level (see ARCHITECTURE.md)."""
