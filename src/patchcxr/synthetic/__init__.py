"""Synthetic CXR sources in the real formats, with ground truth (see :mod:`.sources`)."""

from __future__ import annotations

from patchcxr.synthetic.phantom import Effect, PhantomSpec, Rendering, render, sample_spec
from patchcxr.synthetic.sources import SOURCES, generate_source

__all__ = ["SOURCES", "Effect", "PhantomSpec", "Rendering", "generate_source", "render", "sample_spec"]
