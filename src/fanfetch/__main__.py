"""``python -m fanfetch``: the same as the ``fanfetch`` command."""

from ._cli import main

if __name__ == "__main__":
    main()
