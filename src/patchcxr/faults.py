"""Fault-injection points: where the reliability tests stop a job to kill the workflow.

A long job (training, mask generation) calls :func:`fault_point` at the moments a kill is
most likely to hurt: after an epoch's resume state is written, after a training step,
after a mask file is written. Normally this costs one dictionary lookup. With the
environment variable ``PATCHCXR_FAULT_AT=<event>@<where>`` set, the job that reaches
``event`` at a place whose path contains ``where`` (e.g. ``epoch:1@segmentation/unet``)
writes the point to the file named by ``PATCHCXR_FAULT_MARKER`` (if set) and then hangs
until it is killed. The test then sends SIGKILL to the whole workflow, at a moment it
knows, instead of racing a timer against jobs that take a fraction of a second (see
``tests/test_faults.py``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: ``<event>@<substring of the place>``: the point at which to hang
FAULT_AT = "PATCHCXR_FAULT_AT"
#: file written (atomically) with the point when it is reached
FAULT_MARKER = "PATCHCXR_FAULT_MARKER"


def fault_point(event: str, where: Path | str) -> None:
    """Hang here, to be killed, if ``PATCHCXR_FAULT_AT`` names this event and place."""
    spec = os.environ.get(FAULT_AT)
    if not spec:
        return
    want_event, _, want_where = spec.partition("@")
    if event != want_event or want_where not in str(where):
        return
    log.warning("fault point %s at %s reached: waiting to be killed", event, where)
    marker = os.environ.get(FAULT_MARKER)
    if marker:
        from patchcxr.io import atomic_write_text

        atomic_write_text(marker, f"{event}@{where}\n")
    while True:  # until SIGKILL; never returns
        time.sleep(3600)
