"""_observe: see docs/development.md."""
