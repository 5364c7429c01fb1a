"""_net: see docs/development.md."""
