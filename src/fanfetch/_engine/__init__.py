"""_engine: see docs/development.md."""
