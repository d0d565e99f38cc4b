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
#: `precision` resource), never the science's
PRECISIONS = ("fp32", "bf16", "fp16")
#: what a rule or ``patchcxr predict`` may ask for: a precision, or ``auto`` (the default):
#: bf16 autocast where the device computes bf16 natively, fp32 elsewhere
#: (:func:`resolve_precision`)
PRECISION_CHOICES = ("auto", *PRECISIONS)
#: the CPU flags of native bf16 arithmetic (Linux /proc/cpuinfo names)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA device with bf16 (Ampere or later),
    a CPU with AVX-512 BF16 or AMX. Elsewhere bf16 autocast is emulated, and slower."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(cpu_flags() & set(BF16_CPU_FLAGS))
    return False


def resolve_precision(requested: str, device: torch.device, *, bf16: bool | None = None) -> str:
    """The precision a job computes in: ``requested`` itself, or for ``auto`` bf16 where
    ``device`` computes bf16 natively (``bf16``: that capability, :func:`native_bf16` when
    None) and fp32 elsewhere."""
    if requested not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if (native_bf16(device) if bf16 is None else bf16) else "fp32"


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
    ``precision``: ``auto`` (bf16 where the device computes it natively, else fp32:
    :func:`resolve_precision`, done when the run-time is made; ``requested`` keeps what was
    asked), ``fp32``, or ``bf16``/``fp16`` autocast (:data:`PRECISIONS`); ``threads``:
    torch's CPU threads (0: leave torch's default); ``memory_efficient``: an FC-DenseNet's
    recomputation in training, ``model`` (as the model's configuration says), ``on`` or
    ``off``."""

    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    memory_efficient: str = "model"
    #: the precision asked for (``auto`` or one of :data:`PRECISIONS`); ``precision`` is
    #: always the resolved one
    requested: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {self.precision!r}")
        # frozen: the resolution is stored once, at construction
        object.__setattr__(self, "requested", self.requested or self.precision)
        object.__setattr__(self, "precision", resolve_precision(self.precision, resolve_device(self.device)))

    @classmethod
    def of_job(cls, resources: Any, threads: int) -> Runtime:
        """The run-time of a Snakemake job: its ``device``, ``precision`` and
        ``memory_efficient`` resources (defaults where a rule has none) and its threads."""
        return cls(
            device=str(getattr(resources, "device", "auto")),
            precision=str(getattr(resources, "precision", "auto")),
            threads=int(threads),
            memory_efficient=str(getattr(resources, "memory_efficient", "model")),
        )

    def for_inference(self, trained: str | None) -> str:
        """The precision a model trained in ``trained`` (its model file's record; None for
        a file from before it was recorded) predicts and maps saliency in. An explicit
        precision is kept. Under ``auto`` a model predicts in the arithmetic it was trained
        in: fp32 for an fp32 model, bf16 for a bf16 model where the device computes bf16
        natively (else fp32), the resolved ``auto`` when unknown. Measured on the real
        MobileNetV2 models trained in bf16 (bench/RESULTS.md, 2026-12-07): fp32 inference
        changed 4 of 128 Shenzhen calls and 24 of 300 dev4 calls, and on dev4 it lowered
        the accuracy by 0.043 [0.013, 0.072] (paired over patients)."""
        # the resolved auto is already bf16 exactly where bf16 is native: only an fp32 model differs
        return "fp32" if self.requested == "auto" and trained == "fp32" else self.precision

    @functools.cached_property
    def torch_device(self) -> torch.device:
        """The device, resolved (:func:`resolve_device`)."""
        return resolve_device(self.device)

    def start(self) -> None:
        """Set torch's CPU threads (a job's share of the machine's cores)."""
        if self.threads > 0:
            torch.set_num_threads(self.threads)


#: the run-time of a call that names none: auto device, fp32 (exact), torch's threads
DEFAULT_RUNTIME = Runtime(precision="fp32")


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
