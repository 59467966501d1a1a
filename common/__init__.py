"""Small shared pieces every package may import: no UI, no models, no database (see ARCHITECTURE.md)."""
