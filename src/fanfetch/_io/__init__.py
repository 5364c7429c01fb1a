"""_io: see docs/development.md."""
