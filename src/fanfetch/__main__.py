"""``python -m fanfetch``: the same as the ``fanfetch`` command."""

from ._cli._main import main

if __name__ == "__main__":
    main()
