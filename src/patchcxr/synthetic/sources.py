"""Synthetic copies of the paper's data sources, in each source's original on-disk format.

Every writer reproduces the layout and encoding of the real distribution (method.md §2,
docs/method.md §2.1), so the readers of :mod:`patchcxr.data` meet here exactly what they meet
in a user's download:

==============  =====================================================================
source          what is written
==============  =====================================================================
``jsrt``        ``All247images/JPCNN###.IMG`` and ``JPCLN###.IMG``: headerless 2048×2048
                12-bit big-endian unsigned integers, **inverted** (air bright, bone dark),
                exactly 8,388,608 bytes each
``scr``         ``fold{1,2}/masks/<organ>/<id>.gif`` for ``heart``, ``left lung``,
                ``right lung``, ``left clavicle``, ``right clavicle``: 1024×1024 GIF, 0/255
``montgomery``  ``MontgomerySet/CXR_png/MCUCXR_####_{0,1}.png`` (8-bit grey),
                ``ManualMask/{leftMask,rightMask}/`` (0/255) and ``ClinicalReadings/*.txt``
``shenzhen``    ``ChinaSet_AllFiles/CXR_png/CHNCXR_####_{0,1}.png`` (8-bit palette, as the
                NLM originals), ``ChinaSet_AllFiles/ClinicalReadings/*.txt`` and the
                Kaggle-style lung masks ``mask/CHNCXR_####_#_mask.png``
``kermany``     ``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/`` JPEGs named
                ``IM-####-####.jpeg``, ``NORMAL2-IM-####-####.jpeg``,
                ``person###_bacteria_###.jpeg``, ``person###_virus_###.jpeg`` and the
                CoronaHack ``Chest_xray_Corona_Metadata.csv`` beside it
``cohen``       ``covid-chestxray-dataset/metadata.csv`` (the collection's column schema)
                and ``images/`` (JPEG and PNG)
==============  =====================================================================

Ground truth goes to its own folder (never inside a source tree): ``images.tsv`` (one row
per written image: class, patient, view, planted effect, …), ``lesions.tsv`` (lesion boxes
in pixel coordinates of the written file) and ``labels/<image_id>.png`` (uint8 label map at
the file's resolution: 0 background, 1 heart, 2 left lung, 3 right lung).

All randomness flows from ``numpy.random.default_rng([seed, crc32(stream), index])``, so a
source is reproducible byte for byte and independent of which other sources are made.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from patchcxr import __version__
from patchcxr.data.labels import LABEL5, LabelValue
from patchcxr.io import atomic_write_bytes, atomic_write_text, encode_png
from patchcxr.synthetic.phantom import (
    Effect,
    PhantomSpec,
    render,
    sample_spec,
)

log = logging.getLogger(__name__)

JSRT_SIZE = 2048  # the JSRT format: 2048×2048, 0.175 mm pixels
SCR_SIZE = 1024  # SCR masks are stored at half the JSRT resolution
SOURCES = ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen")

IMAGE_COLUMNS = [
    "source",
    "image_id",
    "path",
    "patient_id",
    "label5",
    "finding",
    "view",
    "sex",
    "age",
    "paediatric",
    "height",
    "width",
    "bit_depth",
    "lung_mean_shift",
    "lung_std_scale",
    "heart_scale",
    "n_lesions",
    "label_map",
]
LESION_COLUMNS = ["source", "image_id", "kind", "side", "x0", "y0", "x1", "y1"]

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
CORONAHACK_COLUMNS = [
    "",
    "X_ray_image_name",
    "Label",
    "Dataset_type",
    "Label_2_Virus_category",
    "Label_1_Virus_category",
]


@dataclass(frozen=True)
class Exposure:
    """How a source turns density into display intensity.

    ``I = clip(((D - lo) / (hi - lo)) ** gamma + brightness + noise, 0, 1)``; a different
    exposure per source is what the paper's universal preprocessing must harmonise.
    """

    lo: float
    hi: float
    gamma: float
    noise: float


EXPOSURES = {
    "jsrt": Exposure(0.02, 1.00, 1.00, 0.006),
    "montgomery": Exposure(0.00, 0.95, 0.85, 0.010),
    "shenzhen": Exposure(0.05, 1.00, 1.15, 0.010),
    "kermany": Exposure(0.00, 0.90, 1.25, 0.015),
    "cohen": Exposure(0.03, 0.98, 0.95, 0.012),
}


def cohort_sheet(params: Mapping[str, Any], sheet: str) -> list[dict[str, str]] | None:
    """Rows of one sheet of the paper's ``metadata.xls`` when ``cohort_sheet`` is set.

    With it, the generator names its JSRT, Montgomery, Kermany and Cohen files (and sets
    their classes, patients and views) after the paper's image list, so the ``oh2020``
    cohort can be built and tested without the real data.
    """
    path = params.get("cohort_sheet")
    if not path:
        return None
    from patchcxr.data.cohorts import read_oh2020  # pandas + xlrd only when asked for

    df = read_oh2020(path)
    return df[df["sheet"] == sheet].to_dict("records")


def _rng(seed: int, stream: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), index])


def expose(density: np.ndarray, rng: np.random.Generator, exposure: Exposure) -> np.ndarray:
    """Display intensity in [0, 1] (bone bright) from a density map, with per-image jitter."""
    gamma = exposure.gamma * float(rng.uniform(0.92, 1.08))
    brightness = float(rng.uniform(-0.03, 0.03))
    x = np.clip((density - exposure.lo) / (exposure.hi - exposure.lo), 0.0, 1.0) ** gamma
    x = x + brightness + exposure.noise * rng.standard_normal(density.shape, dtype=np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _to_uint8(intensity: np.ndarray) -> np.ndarray:
    return np.round(intensity * 255.0).astype(np.uint8)


#: source artefacts the generator can burn in (config ``synthetic.<source>.artefact``)
ARTEFACTS = ("none", "marker", "border")


def plant_artefact(gray: np.ndarray, artefact: Mapping[str, Any] | None) -> np.ndarray:
    """Burn a source artefact into a display image (uint8), as hospitals' films carry them
    (DeGrave et al. 2021: laterality markers, text, borders read instead of the lungs).

    ``marker``: a white square of side ``size`` × the short side in the top-left corner,
    outside the lung field (a burnt-in marker); ``border``: a white frame ``size`` × the
    short side wide. ``none`` (or no artefact) leaves the image as it is. The lung field is
    never touched, so the planted source signal lies outside the lung mask.
    """
    spec = dict(artefact or {})
    kind = str(spec.get("kind", "none"))
    if kind not in ARTEFACTS:
        raise ValueError(f"synthetic artefact kind must be one of {ARTEFACTS}, got {kind!r}")
    if kind == "none":
        return gray
    side = max(1, round(float(spec.get("size", 0.06)) * min(gray.shape[:2])))
    out = gray.copy()
    if kind == "marker":
        out[side : 2 * side, side : 2 * side] = 255
    else:
        out[:side], out[-side:], out[:, :side], out[:, -side:] = 255, 255, 255, 255
    return out


def display(density: np.ndarray, rng: np.random.Generator, source: str, cfg: Mapping[str, Any]) -> np.ndarray:
    """The written 8-bit image of a source: its exposure (or, with ``exposure_as``, another
    source's: two sources then differ only in their artefact) and its artefact."""
    exposure = EXPOSURES[str(cfg.get("exposure_as") or source)]
    return plant_artefact(_to_uint8(expose(density, rng, exposure)), cfg.get("artefact"))


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _gif_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(buf, format="GIF")
    return buf.getvalue()


def _palette_png_bytes(gray: np.ndarray) -> bytes:
    """8-bit palette PNG with a grey palette (the NLM Shenzhen originals are stored so)."""
    image = Image.fromarray(gray, mode="P")
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    return encode_png(image)


def encode_jsrt(intensity: np.ndarray) -> bytes:
    """Raw JSRT bytes: 12-bit values, big-endian uint16, inverted (``4095`` = air).

    Raw JSRT films store transmitted signal, so bone is dark; loaders invert them
    (method.md §2.1).
    """
    if intensity.shape != (JSRT_SIZE, JSRT_SIZE):
        raise ValueError(f"JSRT images are {JSRT_SIZE}x{JSRT_SIZE}, got {intensity.shape}")
    raw = np.round((1.0 - intensity) * 4095.0).astype(">u2")
    return raw.tobytes()


class _Sink:
    """Collects ground truth for one source and writes every file atomically."""

    def __init__(self, source: str, out_dir: Path, gt_dir: Path) -> None:
        self.source, self.out_dir, self.gt_dir = source, out_dir, gt_dir
        self.images: list[dict[str, Any]] = []
        self.lesions: list[dict[str, Any]] = []

    def file(self, rel: str, data: bytes) -> str:
        atomic_write_bytes(self.out_dir / rel, data)
        return rel

    def label_map(self, image_id: str, labels: np.ndarray) -> str:
        rel = f"labels/{image_id}.png"
        atomic_write_bytes(self.gt_dir / rel, encode_png(Image.fromarray(labels, mode="L")))
        return rel

    def record(
        self,
        image_id: str,
        rel: str,
        spec: PhantomSpec,
        labels: np.ndarray | None,
        boxes: list[tuple[str, str, int, int, int, int]],
        *,
        patient_id: str,
        label5: str,
        finding: str,
        view: str = "PA",
        sex: str = "",
        age: int | str = "",
        bit_depth: int = 8,
        shape: tuple[int, int],
    ) -> None:
        self.images.append(
            {
                "source": self.source,
                "image_id": image_id,
                "path": rel,
                "patient_id": patient_id,
                "label5": label5,
                "finding": finding,
                "view": view,
                "sex": sex,
                "age": age,
                "paediatric": int(spec.paediatric),
                "height": shape[0],
                "width": shape[1],
                "bit_depth": bit_depth,
                "lung_mean_shift": spec.effect.lung_mean_shift,
                "lung_std_scale": spec.effect.lung_std_scale,
                "heart_scale": round(spec.heart_scale, 6),
                "n_lesions": len(boxes),
                "label_map": self.label_map(image_id, labels) if labels is not None else "",
            }
        )
        for kind, side, x0, y0, x1, y1 in boxes:
            self.lesions.append(
                {
                    "source": self.source,
                    "image_id": image_id,
                    "kind": kind,
                    "side": side,
                    "x0": x0,
                    "y0": y0,
                    "x1": x1,
                    "y1": y1,
                }
            )

    def close(self, params: Mapping[str, Any]) -> None:
        atomic_write_text(self.gt_dir / "images.tsv", _tsv(IMAGE_COLUMNS, self.images))
        atomic_write_text(self.gt_dir / "lesions.tsv", _tsv(LESION_COLUMNS, self.lesions))
        atomic_write_text(
            self.gt_dir / "generator.json",
            json.dumps(
                {"source": self.source, "patchcxr_version": __version__, "params": params}, indent=2, sort_keys=True
            ),
        )
        log.info(
            "%s: %d images, %d lesions written to %s", self.source, len(self.images), len(self.lesions), self.out_dir
        )


def _csv_bytes(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    """A comma-separated metadata file as the sources ship them."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _tsv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _effect(params: Mapping[str, Any], label: str) -> Effect:
    eff = params.get("effects", {}).get(label, {})
    return Effect(float(eff.get("lung_mean_shift", 0.0)), float(eff.get("lung_std_scale", 1.0)))


def _progress(items: list[Any], source: str) -> Iterator[Any]:
    """Yield items, logging progress every ~10 % (generation of large cohorts takes minutes)."""
    step = max(1, len(items) // 10)
    for i, item in enumerate(items):
        if i and i % step == 0:
            log.info("%s: %d/%d images", source, i, len(items))
        yield item


# --------------------------------------------------------------------------- JSRT + SCR
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
        plan.append((case, sample_spec(_rng(params["seed"], "jsrt", i), "normal", _effect(params, "normal"))))
    for i in range(int(counts["nodule"])):
        rng = _rng(params["seed"], "jsrt-nodule", i)
        plan.append((f"JPCLN{i + 1:03d}", sample_spec(rng, "nodule", _effect(params, "normal"))))
    return plan


def write_jsrt(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    sink = _Sink("jsrt", out_dir, gt_dir)
    for n, (case, spec) in enumerate(_progress(plan_jsrt(params), "jsrt")):
        r = render(spec, JSRT_SIZE, JSRT_SIZE)
        intensity = expose(r.density, _rng(params["seed"], "jsrt-exposure", n), EXPOSURES["jsrt"])
        rel = sink.file(f"All247images/{case}.IMG", encode_jsrt(intensity))
        nodule = case.startswith("JPCLN")
        sink.record(
            case,
            rel,
            spec,
            r.labels,
            r.lesion_boxes,
            patient_id=case,
            label5="" if nodule else "normal",
            finding="nodule" if nodule else "non-nodule",
            bit_depth=12,
            shape=(JSRT_SIZE, JSRT_SIZE),
        )
    return sink


SCR_ORGANS = ("heart", "left lung", "right lung", "left clavicle", "right clavicle")


def write_scr(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    """SCR masks for the synthetic JSRT films, split into two folds like the distribution."""
    sink = _Sink("scr", out_dir, gt_dir)
    for n, (case, spec) in enumerate(_progress(plan_jsrt(params), "scr")):
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
            r.labels,
            [],
            patient_id=case,
            label5="",
            finding="mask",
            bit_depth=1,
            shape=(SCR_SIZE, SCR_SIZE),
        )
    return sink


# --------------------------------------------------------------------------- NLM sets
def _shape(cfg: Mapping[str, Any]) -> tuple[int, int]:
    return int(cfg["height"]), int(cfg["width"])


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
        rng = _rng(params["seed"], source, n)
        plan.append((label, num, sample_spec(rng, label, _effect(params, label)), rng))
    return plan


def _reading(label: str, rng: np.random.Generator) -> str:
    if label == "normal":
        return "normal"
    side = str(rng.choice(["left", "right", "bilateral"]))
    return f"{side} upper zone nodular opacities and cavitation, consistent with pulmonary TB"


def _write_nlm(params: Mapping[str, Any], out_dir: Path, gt_dir: Path, source: str) -> _Sink:
    """Montgomery and Shenzhen: same NLM release layout, different encodings.

    Montgomery: 8-bit grey PNG, separate ``leftMask``/``rightMask`` for every film,
    readings ``Patient's Sex: M`` / ``Patient's Age: 040Y``. Shenzhen: 8-bit palette PNG,
    combined Kaggle-style ``mask/<id>_mask.png`` for a share of the films, readings
    ``male 45yrs``. NLM masks exclude the heart; "left" is the patient's left (image right).
    """
    cfg = params[source]
    montgomery = source == "montgomery"
    prefix, top = ("MCUCXR", "MontgomerySet") if montgomery else ("CHNCXR", "ChinaSet_AllFiles")
    sink = _Sink(source, out_dir, gt_dir)
    shape = _shape(cfg)
    plan = _nlm_plan(params, source)
    n_masks = len(plan) if montgomery else round(float(cfg["mask_fraction"]) * len(plan))
    for i, (label, num, spec, rng) in enumerate(_progress(plan, source)):
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
            r.labels,
            r.lesion_boxes,
            patient_id=case,
            label5=label,
            finding=label,
            sex="M" if male else "F",
            age=age,
            shape=shape,
        )
    return sink


def write_montgomery(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    return _write_nlm(params, out_dir, gt_dir, "montgomery")


def write_shenzhen(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    return _write_nlm(params, out_dir, gt_dir, "shenzhen")


# --------------------------------------------------------------------------- Kermany / CoronaHack
def _patients(counts: Mapping[str, int], per_patient: int) -> list[tuple[str, int, int]]:
    """(label, patient index, image index within patient) for the requested image counts.

    Classes are taken in the fixed order of :data:`patchcxr.data.labels.LABEL5`, never in the mapping's order,
    so the files do not depend on how the configuration was merged.
    """
    out = []
    patient = 0
    for label in LABEL5:
        for i in range(int(counts.get(label, 0))):
            if i % per_patient == 0:
                patient += 1
            out.append((label, patient, i % per_patient))
    return out


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
    plan = _patients(cfg["counts"], int(cfg["images_per_patient"]))
    n_test = round(float(cfg["test_fraction"]) * len({p for _, p, _ in plan}))
    items = []
    for n, (label, patient, k) in enumerate(plan):
        if label == "normal":
            name = f"{'NORMAL2-' if patient % 2 else ''}IM-{patient:04d}-{k + 1:04d}.jpeg"
        else:
            name = f"person{patient}_{'bacteria' if label == 'bacterial' else 'virus'}_{n + 1}.jpeg"
        items.append((label, patient, name, "test" if patient <= n_test else "train"))
    return items


def write_kermany(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    cfg = params["kermany"]
    sink = _Sink("kermany", out_dir, gt_dir)
    shape = _shape(cfg)
    rows: list[dict[str, Any]] = []
    bases: dict[int, PhantomSpec] = {}
    for n, (label, patient, name, split) in enumerate(_progress(_kermany_items(params), "kermany")):
        rng = _rng(params["seed"], "kermany", n)
        spec = sample_spec(rng, label, _effect(params, label), paediatric=True, base=bases.get(patient))
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
        rel = sink.file(f"chest_xray/{split}/{folder}/{name}", _jpeg_bytes(image, quality=90))
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
            r.labels,
            r.lesion_boxes,
            patient_id=f"kermany-{patient}",
            label5=label,
            finding=cat or "normal",
            shape=shape,
        )
    sink.file("Chest_xray_Corona_Metadata.csv", _csv_bytes(CORONAHACK_COLUMNS, rows))
    return sink


# --------------------------------------------------------------------------- Cohen
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
    plan = _patients(dict(cfg["counts"]), int(cfg["images_per_patient"]))
    items = [{"kind": label, "patient": p, "k": k} for label, p, k in plan]
    last = max([p for _, p, _ in plan], default=0)
    extra = ["lateral"] * int(cfg["lateral"]) + ["excluded"] * int(cfg["excluded"])
    items += [{"kind": kind, "patient": last + 1 + i, "k": 0} for i, kind in enumerate(extra)]
    return items


def write_cohen(params: Mapping[str, Any], out_dir: Path, gt_dir: Path) -> _Sink:
    """Cohen et al. collection: several films per patient, mixed formats and views.

    Besides the requested classes it writes ``lateral`` lateral films and ``excluded``
    films whose findings the paper's label rules exclude (Pneumocystis, ARDS alone, lipoid
    pneumonia), so that label rules and quarantine are testable on known ground truth.
    """
    cfg = params["cohen"]
    sink = _Sink("cohen", out_dir, gt_dir)
    shape = _shape(cfg)
    rows: list[dict[str, Any]] = []
    bases: dict[int, PhantomSpec] = {}
    people: dict[int, tuple[str, int]] = {}
    for n, item in enumerate(_progress(_cohen_items(params), "cohen")):
        label, patient, k = item["kind"], item["patient"], item["k"]
        rng = _rng(params["seed"], "cohen", n)
        view = item.get("view") or str(rng.choice(["PA", "AP", "AP Supine"], p=[0.6, 0.25, 0.15]))
        if label == "lateral":
            spec = sample_spec(rng, "lateral")
            view, finding, label5 = "L", str(rng.choice(COHEN_FINDINGS["covid19"])), "covid19"
        elif label == "excluded":
            finding = COHEN_EXCLUDED_FINDINGS[n % len(COHEN_EXCLUDED_FINDINGS)]
            spec = sample_spec(rng, "bacterial" if finding == "Pneumocystis" else "viral")
            label5 = ""
        else:
            spec = sample_spec(rng, label, _effect(params, label), base=bases.get(patient))
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
            data = _jpeg_bytes(Image.fromarray(gray, mode="L").convert("RGB"), quality=88)
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
            labels if label != "lateral" else None,
            r.lesion_boxes,
            patient_id=f"cohen-{patient}",
            label5=label5,
            finding=finding,
            view=view,
            sex=sex,
            age=age,
            shape=shape,
        )
    sink.file("covid-chestxray-dataset/metadata.csv", _csv_bytes(COHEN_COLUMNS, rows))
    return sink


WRITERS: dict[str, Callable[[Mapping[str, Any], Path, Path], _Sink]] = {
    "jsrt": write_jsrt,
    "scr": write_scr,
    "montgomery": write_montgomery,
    "shenzhen": write_shenzhen,
    "kermany": write_kermany,
    "cohen": write_cohen,
}


def generate_source(source: str, params: Mapping[str, Any], out_dir: Path | str, gt_dir: Path | str) -> int:
    """Write one synthetic source in its original format, and its ground truth.

    Args:
        source: one of :data:`SOURCES`.
        params: the validated ``synthetic`` section of the config.
        out_dir: the source's folder (what a user would point ``sources.<name>.path`` to).
        gt_dir: folder of the ground truth (``images.tsv``, ``lesions.tsv``, ``labels/``).

    Returns:
        The number of images (or SCR mask sets) written.
    """
    if source not in WRITERS:
        raise ValueError(f"unknown synthetic source {source!r}; expected one of {', '.join(SOURCES)}")
    sink = WRITERS[source](params, Path(out_dir), Path(gt_dir))
    sink.close(params)
    return len(sink.images)
