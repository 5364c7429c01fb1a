"""_core: see docs/development.md."""
