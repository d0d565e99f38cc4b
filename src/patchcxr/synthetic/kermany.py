"""Synthetic Kermany films (``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/`` JPEGs) with the
CoronaHack metadata file beside them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from patchcxr.synthetic.common import (
    Sink,
    cohort_sheet,
    csv_bytes,
    film_shape,
    jpeg_bytes,
    label_effect,
    patient_plan,
    progress,
    source_rng,
)
from patchcxr.synthetic.exposure import display
from patchcxr.synthetic.phantom import PhantomSpec, render, sample_spec

CORONAHACK_COLUMNS = [
    "",
    "X_ray_image_name",
    "Label",
    "Dataset_type",
    "Label_2_Virus_category",
    "Label_1_Virus_category",
]


def _kermany_items(params: Mapping[str, Any]) -> list[tuple[str, int, str, str]]:
    """(label, patient, file name, split) of every Kermany image to write."""
    cfg = params["kermany"]
    sheet = cohort_sheet(params, "CoronaHack")
    if sheet is not None:
        items = []
        for r in sheet:
            m = re.search(r"(?:IM-(\d+)|person(\d+))", r["filename"])
            patient = int(m.group(1) or m.group(2)) if m else 0
            items.append((r["label5"], patient, r["filename"], "train"))
        return items
    plan = patient_plan(cfg["counts"], int(cfg["images_per_patient"]))
    n_test = round(float(cfg["test_fraction"]) * len({p for _, p, _ in plan}))
    items = []
    for n, (label, patient, k) in enumerate(plan):
        if label == "normal":
            name = f"{'NORMAL2-' if patient % 2 else ''}IM-{patient:04d}-{k + 1:04d}.jpeg"
        else:
            name = f"person{patient}_{'bacteria' if label == 'bacterial' else 'virus'}_{n + 1}.jpeg"
        items.append((label, patient, name, "test" if patient <= n_test else "train"))
    return items


def write_kermany(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    cfg = params["kermany"]
    sink = Sink("kermany", out_dir, gt_dir)
    shape = film_shape(cfg)
    rows: list[dict[str, Any]] = []
    bases: dict[int, PhantomSpec] = {}
    for n, (label, patient, name, split) in enumerate(progress(_kermany_items(params), "kermany")):
        rng = source_rng(params["seed"], "kermany", n)
        spec = sample_spec(rng, label, label_effect(params, label), paediatric=True, base=bases.get(patient))
        bases.setdefault(patient, spec)
        if label == "normal":
            folder, csv_label, cat = "NORMAL", "Normal", ""
        else:
            folder, csv_label, cat = "PNEUMONIA", "Pnemonia", "bacteria" if label == "bacterial" else "Virus"
        r = render(spec, *shape)
        gray = display(r.density, rng, "kermany", cfg)
        image = Image.fromarray(gray, mode="L")
        if rng.uniform() < float(cfg["rgb_fraction"]):
            image = image.convert("RGB")  # some Kermany JPEGs are stored as RGB
        rel = sink.file(f"chest_xray/{split}/{folder}/{name}", jpeg_bytes(image, quality=90))
        rows.append(
            {
                "": len(rows),
                "X_ray_image_name": name,
                "Label": csv_label,
                "Dataset_type": split.upper(),
                "Label_2_Virus_category": "",
                "Label_1_Virus_category": cat,
            }
        )
        sink.record(
            Path(name).stem,
            rel,
            spec,
            labels=r.labels,
            boxes=r.lesion_boxes,
            patient_id=f"kermany-{patient}",
            label5=label,
            finding=cat or "normal",
            shape=shape,
        )
    sink.file("Chest_xray_Corona_Metadata.csv", csv_bytes(CORONAHACK_COLUMNS, rows))
    return sink
