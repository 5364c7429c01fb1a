"""Drop the coverage data files that processes killed mid-write left torn (the kill -9
tests kill fanfetch on purpose), before ``coverage combine`` reads them: a torn file holds
nothing that can be used, and combining it only warns. Run by ``make test``."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path


def main(folder: str = ".") -> int:
    dropped = 0
    for path in sorted(Path(folder).glob(".coverage.*")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                db.execute("select count(*) from file").fetchone()
        except sqlite3.DatabaseError:
            path.unlink()
            dropped += 1
    if dropped:
        print(f"coverage: {dropped} data file(s) of processes killed mid-write left out")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
