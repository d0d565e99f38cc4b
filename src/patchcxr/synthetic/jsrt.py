"""Synthetic JSRT films (headerless 12-bit raw, inverted) and their SCR masks (GIF, two
folds); both writers draw the same cases (:func:`plan_jsrt`), so masks match films."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from patchcxr.data.labels import LabelValue
from patchcxr.synthetic.common import Sink, cohort_sheet, label_effect, progress, source_rng
from patchcxr.synthetic.exposure import EXPOSURES, expose
from patchcxr.synthetic.phantom import PhantomSpec, render, sample_spec

JSRT_SIZE = 2048  # the JSRT format: 2048×2048, 0.175 mm pixels
SCR_SIZE = 1024  # SCR masks are stored at half the JSRT resolution


def _gif_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(buf, format="GIF")
    return buf.getvalue()


def encode_jsrt(intensity: np.ndarray) -> bytes:
    """Raw JSRT bytes: 12-bit values, big-endian uint16, inverted (``4095`` = air).

    Raw JSRT films store transmitted signal, so bone is dark; loaders invert them
    (method.md §2.1).
    """
    if intensity.shape != (JSRT_SIZE, JSRT_SIZE):
        raise ValueError(f"JSRT images are {JSRT_SIZE}x{JSRT_SIZE}, got {intensity.shape}")
    raw = np.round((1.0 - intensity) * 4095.0).astype(">u2")
    return raw.tobytes()


def plan_jsrt(params: Mapping[str, Any]) -> list[tuple[str, PhantomSpec]]:
    """JSRT case ids and specs; shared by the JSRT and SCR writers so masks match films."""
    counts = params["jsrt"]
    sheet = cohort_sheet(params, "JSRT")
    normals = (
        [r["stem"].upper() for r in sheet]
        if sheet is not None
        else [f"JPCNN{i + 1:03d}" for i in range(int(counts["non_nodule"]))]
    )
    plan = []
    for i, case in enumerate(normals):
        plan.append(
            (case, sample_spec(source_rng(params["seed"], "jsrt", i), "normal", label_effect(params, "normal")))
        )
    for i in range(int(counts["nodule"])):
        rng = source_rng(params["seed"], "jsrt-nodule", i)
        plan.append((f"JPCLN{i + 1:03d}", sample_spec(rng, "nodule", label_effect(params, "normal"))))
    return plan


def write_jsrt(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    sink = Sink("jsrt", out_dir, gt_dir)
    for n, (case, spec) in enumerate(progress(plan_jsrt(params), "jsrt")):
        r = render(spec, JSRT_SIZE, JSRT_SIZE)
        intensity = expose(r.density, source_rng(params["seed"], "jsrt-exposure", n), EXPOSURES["jsrt"])
        rel = sink.file(f"All247images/{case}.IMG", encode_jsrt(intensity))
        nodule = case.startswith("JPCLN")
        sink.record(
            case,
            rel,
            spec,
            labels=r.labels,
            boxes=r.lesion_boxes,
            patient_id=case,
            label5="" if nodule else "normal",
            finding="nodule" if nodule else "non-nodule",
            bit_depth=12,
            shape=(JSRT_SIZE, JSRT_SIZE),
        )
    return sink


SCR_ORGANS = ("heart", "left lung", "right lung", "left clavicle", "right clavicle")


def write_scr(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    """SCR masks for the synthetic JSRT films, split into two folds like the distribution."""
    sink = Sink("scr", out_dir, gt_dir)
    for n, (case, spec) in enumerate(progress(plan_jsrt(params), "scr")):
        r = render(spec, SCR_SIZE, SCR_SIZE, blur=False)
        fold = "fold1" if n % 2 == 0 else "fold2"
        organs = {
            "heart": r.labels == LabelValue.HEART,
            "left lung": r.labels == LabelValue.LEFT_LUNG,
            "right lung": r.labels == LabelValue.RIGHT_LUNG,
            "left clavicle": r.clavicles[0],
            "right clavicle": r.clavicles[1],
        }
        for organ in SCR_ORGANS:
            sink.file(f"{fold}/masks/{organ}/{case}.gif", _gif_bytes(organs[organ]))
        sink.record(
            case,
            f"{fold}/masks",
            spec,
            labels=r.labels,
            boxes=[],
            patient_id=case,
            label5="",
            finding="mask",
            bit_depth=1,
            shape=(SCR_SIZE, SCR_SIZE),
        )
    return sink
