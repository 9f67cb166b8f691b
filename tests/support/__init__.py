"""Shared test helpers: a tiny seeded open_clip model and synthetic image files."""
