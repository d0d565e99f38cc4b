"""Logging set-up for workflow scripts and the command line.

Workflow scripts call :func:`setup_logging` with the rule's ``log:`` file first, so that
everything the package logs (progress included) ends up in that file; nothing is printed.

A job that fails writes its exception, with the traceback, to the same file before it
exits (:func:`log_uncaught_exceptions`): the log Snakemake's error message points to holds
the cause. The hook is installed when a workflow script imports this module (from the
``snakemake`` object of the script, so that even a failure before :func:`setup_logging`
reaches the log) and again by :func:`setup_logging`.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Send the ``patchcxr`` loggers (and warnings) to ``log_file``, else to stderr.

    Args:
        log_file: the rule's log; its folder is created. ``None`` logs to stderr.
        level: the threshold for ``patchcxr`` loggers.
    """
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        log_uncaught_exceptions(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("patchcxr").setLevel(level)
    logging.captureWarnings(True)


_DEFAULT_HOOK = sys.excepthook


def log_uncaught_exceptions(log_file: Path | str) -> None:
    """Make an exception that ends the process append itself, with its traceback, to
    ``log_file`` (then print as usual). Replaces an earlier call's hook."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        try:
            logging.shutdown()  # flush what the job logged before its failure
            with open(log_file, "a", encoding="utf-8") as fh:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                fh.write(f"{stamp} CRITICAL patchcxr: the job failed: {kind.__name__}: {value}\n")
                traceback.print_exception(kind, value, tb, file=fh)
        except OSError:
            pass  # an unwritable log must not hide the error itself
        _DEFAULT_HOOK(kind, value, tb)

    sys.excepthook = hook


def _snakemake_log() -> str | None:
    """The ``log:`` file of the Snakemake script job this process runs, if any."""
    job = getattr(sys.modules.get("__main__"), "snakemake", None)
    logs = getattr(job, "log", None)
    return str(logs[0]) if logs else None


if (_job_log := _snakemake_log()) is not None:
    log_uncaught_exceptions(_job_log)
