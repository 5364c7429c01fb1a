"""Run fanfetch's command line in this process and write its peak memory (VmHWM, MB) to a
file when it exits: ``python tests/peak_memory.py OUT ARGS...``.

VmHWM counts only this program's own memory; the peak that ``wait4`` reports would also
count the test process's memory at the fork.
"""

import atexit
import sys


def _report(path: str) -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(path, "w") as out:
                    out.write(str(int(line.split()[1]) / 1024))


if __name__ == "__main__":
    atexit.register(_report, sys.argv[1])
    from fanfetch._cli._main import main

    main(sys.argv[2:])
