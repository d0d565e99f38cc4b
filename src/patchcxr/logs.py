"""Logging set-up for workflow scripts and the command line.

Workflow scripts call :func:`setup_logging` with the rule's ``log:`` file first, so that
everything the package logs (progress included) ends up in that file; nothing is printed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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
