"""Peak resident memory of a Python module or code run in a fresh process.

    python -m patchcxr.peakmem OUT module patchcxr.cli predict …
    python -m patchcxr.peakmem OUT code "<python code>" ARG …

runs the target as ``__main__`` (with ``sys.argv`` = target and its arguments) and, at
exit, writes the process's own peak resident set size (``VmHWM``, in kB) to ``OUT``. Used by
``bench/bench_memory.py`` and ``tests/test_memory.py``. Not ``wait4``'s ``ru_maxrss``: Linux
carries the forking parent's peak into the child's across ``exec``, so a child forked from a
large process (a pytest session) would report the parent's peak. Only the standard library
is imported before the target, so the figure is the target's own.
"""

from __future__ import annotations

import atexit
import runpy
import sys


def vm_hwm_kib() -> int:
    """This process's peak resident memory so far (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))


def main(argv: list[str]) -> None:
    out, kind, target, *args = argv

    def write() -> None:
        with open(out, "w") as fh:
            fh.write(str(vm_hwm_kib()))

    atexit.register(write)
    sys.argv = [target, *args]
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif kind == "code":
        exec(compile(target, "<code>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit(f"patchcxr.peakmem: kind must be module or code, got {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
