"""Pieces every package of the project shares (model, data, engine, tools): user-facing errors and the CLI runner."""
