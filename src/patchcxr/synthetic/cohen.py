"""The synthetic Cohen et al. collection: ``metadata.csv`` in the collection's column schema
and ``images/`` (JPEG and PNG), several films per patient, lateral and excluded films."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from patchcxr.io import encode_png
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

# Cohen et al. metadata.csv header as distributed in June 2020 (trailing empty column included).
COHEN_COLUMNS = [
    "patientid",
    "offset",
    "sex",
    "age",
    "finding",
    "survival",
    "intubated",
    "intubation_present",
    "went_icu",
    "in_icu",
    "needed_supplemental_O2",
    "extubated",
    "temperature",
    "pO2_saturation",
    "leukocyte_count",
    "neutrophil_count",
    "lymphocyte_count",
    "view",
    "modality",
    "date",
    "location",
    "folder",
    "filename",
    "doi",
    "url",
    "license",
    "clinical_notes",
    "other_notes",
    "",
]
COHEN_FINDINGS = {
    "covid19": ["COVID-19", "COVID-19, ARDS"],
    "viral": ["SARS", "Influenza", "Varicella", "MERS"],
    "bacterial": ["Streptococcus", "Klebsiella", "E.Coli", "Legionella"],
    "normal": ["No Finding"],
}
# findings the paper's label rules exclude by default (method.md §2.4)
COHEN_EXCLUDED_FINDINGS = ["Pneumocystis", "ARDS", "Lipoid"]


def _cohen_items(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What to write: class (or ``lateral``/``excluded``), patient, film index, and, when
    named after the paper's sheet, its file name, finding, view and demographics."""
    cfg = params["cohen"]
    sheet = cohort_sheet(params, "Cohen et al")
    if sheet is not None:
        items: list[dict[str, Any]] = []
        films: dict[int, int] = {}
        for r in sheet:
            patient = int(float(r["patientid"])) if r["patientid"] else 900000 + len(items)
            films[patient] = films.get(patient, -1) + 1
            items.append(
                {
                    "kind": r["label5"],
                    "patient": patient,
                    "k": films[patient],
                    "name": r["filename"],
                    "finding": r["finding"],
                    "view": r["view"],
                    "sex": r["sex"],
                    "age": int(float(r["age"])) if r["age"] else None,
                }
            )
        return items
    plan = patient_plan(dict(cfg["counts"]), int(cfg["images_per_patient"]))
    items = [{"kind": label, "patient": p, "k": k} for label, p, k in plan]
    last = max([p for _, p, _ in plan], default=0)
    extra = ["lateral"] * int(cfg["lateral"]) + ["excluded"] * int(cfg["excluded"])
    items += [{"kind": kind, "patient": last + 1 + i, "k": 0} for i, kind in enumerate(extra)]
    return items


def write_cohen(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> Sink:
    """Cohen et al. collection: several films per patient, mixed formats and views.

    Besides the requested classes it writes ``lateral`` lateral films and ``excluded``
    films whose findings the paper's label rules exclude (Pneumocystis, ARDS alone, lipoid
    pneumonia), so that label rules and quarantine are testable on known ground truth.
    """
    cfg = params["cohen"]
    sink = Sink("cohen", out_dir, gt_dir)
    shape = film_shape(cfg)
    rows: list[dict[str, Any]] = []
    bases: dict[int, PhantomSpec] = {}
    people: dict[int, tuple[str, int]] = {}
    for n, item in enumerate(progress(_cohen_items(params), "cohen")):
        label, patient, k = item["kind"], item["patient"], item["k"]
        rng = source_rng(params["seed"], "cohen", n)
        view = item.get("view") or str(rng.choice(["PA", "AP", "AP Supine"], p=[0.6, 0.25, 0.15]))
        if label == "lateral":
            spec = sample_spec(rng, "lateral")
            view, finding, label5 = "L", str(rng.choice(COHEN_FINDINGS["covid19"])), "covid19"
        elif label == "excluded":
            finding = COHEN_EXCLUDED_FINDINGS[n % len(COHEN_EXCLUDED_FINDINGS)]
            spec = sample_spec(rng, "bacterial" if finding == "Pneumocystis" else "viral")
            label5 = ""
        else:
            spec = sample_spec(rng, label, label_effect(params, label), base=bases.get(patient))
            bases.setdefault(patient, spec)
            finding, label5 = item.get("finding") or str(rng.choice(COHEN_FINDINGS[label])), label
        r = render(spec, *shape)
        gray = display(r.density, rng, "cohen", cfg)
        band = 0
        if rng.uniform() < float(cfg["blank_band_fraction"]):
            # a blank (zero) band at the bottom, as on some scanned or cropped figures;
            # the paper's preprocessing crops it (method.md §3.2 step 2)
            band = int(shape[0] * rng.uniform(0.04, 0.1))
            gray[-band:] = 0
        png = rng.uniform() < float(cfg["png_fraction"])
        name = item.get("name") or f"synthetic-{patient:04d}-{k + 1}.{'png' if png else 'jpg'}"
        if name.lower().endswith(".png"):
            data = encode_png(Image.fromarray(gray, mode="L").convert("RGB"))
        else:
            data = jpeg_bytes(Image.fromarray(gray, mode="L").convert("RGB"), quality=88)
        rel = sink.file(f"covid-chestxray-dataset/images/{name}", data)
        # follow-up films keep the patient's demographics
        sex, age = people.setdefault(patient, (str(rng.choice(["M", "F"])), int(rng.integers(25, 85))))
        sex, age = item.get("sex") or sex, item.get("age") or age
        rows.append(
            {c: "" for c in COHEN_COLUMNS}
            | {
                "patientid": patient,
                "offset": k * int(rng.integers(2, 8)),
                "sex": sex,
                "age": age,
                "finding": finding,
                "view": view,
                "modality": "X-ray",
                "date": "2020",
                "location": "Synthetic",
                "folder": "images",
                "filename": name,
                "license": "CC BY-NC-SA",
                "url": f"https://example.invalid/synthetic/{name}",
                "clinical_notes": "synthetic phantom",
                "other_notes": f"blank band {band} rows" if band else "",
            }
        )
        labels = r.labels.copy()
        if band:
            labels[-band:] = 0
        sink.record(
            name.rsplit(".", 1)[0],
            rel,
            spec,
            labels=labels if label != "lateral" else None,
            boxes=r.lesion_boxes,
            patient_id=f"cohen-{patient}",
            label5=label5,
            finding=finding,
            view=view,
            sex=sex,
            age=age,
            shape=shape,
        )
    sink.file("covid-chestxray-dataset/metadata.csv", csv_bytes(COHEN_COLUMNS, rows))
    return sink
