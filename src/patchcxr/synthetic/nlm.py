"""Synthetic NLM sets, Montgomery and Shenzhen: one release layout (films, lung masks,
clinical readings), two encodings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from patchcxr.data.labels import LabelValue
from patchcxr.io import encode_png
from patchcxr.synthetic.common import Sink, cohort_sheet, film_shape, label_effect, progress, source_rng
from patchcxr.synthetic.exposure import display
from patchcxr.synthetic.phantom import PhantomSpec, render, sample_spec


def _palette_png_bytes(gray: np.ndarray) -> bytes:
    """8-bit palette PNG with a grey palette (the NLM Shenzhen originals are stored so)."""
    image = Image.fromarray(gray, mode="P")
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    return encode_png(image)


def _nlm_plan(params: Mapping[str, Any], source: str) -> list[tuple[str, str, PhantomSpec, np.random.Generator]]:
    cfg = params[source]
    sheet = cohort_sheet(params, "NLM(MC)") if source == "montgomery" else None
    if sheet is not None:
        # MCUCXR_0104_1 -> number 0104, class from the sheet
        wanted = [(r["label5"], r["stem"].split("_", 1)[1]) for r in sheet]
    else:
        wanted, n = [], 0
        for label in ("normal", "tb"):
            for _ in range(int(cfg["counts"].get(label, 0))):
                wanted.append((label, f"{n + 1:04d}_{0 if label == 'normal' else 1}"))
                n += 1
    plan = []
    for n, (label, num) in enumerate(wanted):
        rng = source_rng(params["seed"], source, n)
        plan.append((label, num, sample_spec(rng, label, label_effect(params, label)), rng))
    return plan


def _reading(label: str, rng: np.random.Generator) -> str:
    if label == "normal":
        return "normal"
    side = str(rng.choice(["left", "right", "bilateral"]))
    return f"{side} upper zone nodular opacities and cavitation, consistent with pulmonary TB"


def _write_nlm(params: Mapping[str, Any], out_dir: Path, gt_dir: Path, source: str) -> Sink:
    """Montgomery and Shenzhen: same NLM release layout, different encodings.

    Montgomery: 8-bit grey PNG, separate ``leftMask``/``rightMask`` for every film,
    readings ``Patient's Sex: M`` / ``Patient's Age: 040Y``. Shenzhen: 8-bit palette PNG,
    combined Kaggle-style ``mask/<id>_mask.png`` for a share of the films, readings
    ``male 45yrs``. NLM masks exclude the heart; "left" is the patient's left (image right).
    """
    cfg = params[source]
    montgomery = source == "montgomery"
    prefix, top = ("MCUCXR", "MontgomerySet") if montgomery else ("CHNCXR", "ChinaSet_AllFiles")
    sink = Sink(source, out_dir, gt_dir)
    shape = film_shape(cfg)
    plan = _nlm_plan(params, source)
    n_masks = len(plan) if montgomery else round(float(cfg["mask_fraction"]) * len(plan))
    for i, (label, num, spec, rng) in enumerate(progress(plan, source)):
        case = f"{prefix}_{num}"
        r = render(spec, *shape)
        gray = display(r.density, rng, source, cfg)
        if montgomery:
            rel = sink.file(f"{top}/CXR_png/{case}.png", encode_png(Image.fromarray(gray, mode="L")))
        else:
            rel = sink.file(f"{top}/CXR_png/{case}.png", _palette_png_bytes(gray))
        masks = (
            {"leftMask": (LabelValue.LEFT_LUNG,), "rightMask": (LabelValue.RIGHT_LUNG,)}
            if montgomery
            else {"mask": (LabelValue.LEFT_LUNG, LabelValue.RIGHT_LUNG)}
        )
        for folder, values in masks.items() if i < n_masks else ():
            mask = np.where(np.isin(r.labels, values), 255, 0).astype(np.uint8)
            where = f"{top}/ManualMask/{folder}/{case}.png" if montgomery else f"mask/{case}_mask.png"
            sink.file(where, encode_png(Image.fromarray(mask, mode="L")))
        male = bool(rng.uniform() < 0.5)
        age = int(rng.integers(18, 80))
        if montgomery:
            head = f"Patient's Sex: {'M' if male else 'F'}\nPatient's Age: {age:03d}Y"
        else:
            head = f"{'male' if male else 'female'} {age}yrs"
        sink.file(f"{top}/ClinicalReadings/{case}.txt", f"{head}\n{_reading(label, rng)}\n".encode())
        sink.record(
            case,
            rel,
            spec,
            labels=r.labels,
            boxes=r.lesion_boxes,
            patient_id=case,
            label5=label,
            finding=label,
            sex="M" if male else "F",
            age=age,
            shape=shape,
        )
    return sink


def write_montgomery(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    return _write_nlm(params, out_dir, gt_dir, "montgomery")


def write_shenzhen(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    return _write_nlm(params, out_dir, gt_dir, "shenzhen")
