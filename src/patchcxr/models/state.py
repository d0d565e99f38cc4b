"""Model files and devices: what every trainer and every loader of this package shares.

A model file is a ``torch.save`` of tensors and plain containers only; it is read with
``weights_only=True``, so a file carrying a pickle that would run code is refused.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
