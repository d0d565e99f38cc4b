"""Model files and devices: what every trainer and every loader of this package shares.

A model file is a ``torch.save`` of tensors and plain containers only; it is read with
``weights_only=True``, so a file carrying a pickle that would run code is refused.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: numeric precision of training and inference: a machine's setting (a profile's
#: `precision` resource), never the science's; fp32 everywhere unless a profile says so
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Runtime:
    """Where and how a job computes, a machine's setting (a profile's resources), never
    the science's: built once per workflow script (:meth:`of_job`) or by the CLI, and
    handed to every entry point that runs a network.

    ``device``: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N``;
    ``precision``: ``fp32``, or ``bf16``/``fp16`` autocast (:data:`PRECISIONS`); ``threads``:
    torch's CPU threads (0: leave torch's default); ``memory_efficient``: an FC-DenseNet's
    recomputation in training, ``model`` (as the model's configuration says), ``on`` or
    ``off``."""

    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    memory_efficient: str = "model"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def of_job(cls, resources: Any, threads: int) -> Runtime:
        """The run-time of a Snakemake job: its ``device``, ``precision`` and
        ``memory_efficient`` resources (defaults where a rule has none) and its threads."""
        return cls(
            device=str(getattr(resources, "device", "auto")),
            precision=str(getattr(resources, "precision", "fp32")),
            threads=int(threads),
            memory_efficient=str(getattr(resources, "memory_efficient", "model")),
        )

    @functools.cached_property
    def torch_device(self) -> torch.device:
        """The device, resolved (:func:`resolve_device`)."""
        return resolve_device(self.device)

    def start(self) -> None:
        """Set torch's CPU threads (a job's share of the machine's cores)."""
        if self.threads > 0:
            torch.set_num_threads(self.threads)


#: the run-time of a call that names none: auto device, fp32, torch's threads
DEFAULT_RUNTIME = Runtime()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on ``device``: ``bf16`` or ``fp16`` autocast (matrix products and
    convolutions in half precision, reductions and losses in fp32), or nothing for ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 training needs (its small exponent range underflows gradients);
    none for fp32 and bf16 (bf16 keeps fp32's range)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU training batch on ``device``: for CUDA through pinned memory with a
    non-blocking copy (the next batch is built on the CPU while this one is copied and
    computed on); a plain move elsewhere."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def state_to_bytes(obj: Any) -> bytes:
    """The bytes of ``torch.save(obj)`` (written atomically by the caller)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_state(path: Path | str, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by this project: tensors and plain containers only
    (``weights_only=True``: a pickle that would run code is refused)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError and others for hostile files
        raise ValueError(f"{path}: not a plain weights file ({type(err).__name__}: {err})") from None
