"""Readers of the sources that come with lung masks (method.md §2): JSRT films with their
masks from an SCR tree (``jsrt``, ``scr``), and the NLM collections, Montgomery and
Shenzhen (``montgomery``, ``shenzhen``), with their clinical readings and their masks in
any of the layouts they ship in. Each returns a :class:`~patchcxr.data.records.SourceIndex`;
:func:`patchcxr.data.readers.read_source` dispatches to them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from patchcxr.data.labels import LabelRules
from patchcxr.data.records import (
    ImageRecord,
    SourceIndex,
    SourceLayoutError,
    age_years,
    paediatric_flag,
    sex_code,
    source_files,
)

# --------------------------------------------------------------------------- JSRT / SCR
SCR_ORGANS = {"heart": "heart", "left lung": "left", "right lung": "right"}


def _scr_masks(scr_root: Path | None) -> dict[str, dict[str, Path]]:
    """Case id → {left, right, heart} GIFs of an SCR tree (folds or flat)."""
    out: dict[str, dict[str, Path]] = {}
    if scr_root is None:
        return out
    for organ, role in SCR_ORGANS.items():
        for gif in source_files(scr_root, f"*/{organ}/*.gif"):
            out.setdefault(gif.stem.upper(), {})[role] = gif
    return out


def _must_match(pattern: re.Pattern[str], name: str) -> re.Match[str]:
    """The match of a file name already selected by ``pattern``."""
    m = pattern.search(name)
    if m is None:
        raise ValueError(f"{name!r} does not match {pattern.pattern!r}")
    return m


def read_jsrt(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    index = SourceIndex()
    masks = _scr_masks(Path(spec["masks"]) if spec.get("masks") else None)
    pattern = re.compile(r"(JPC[LN]N\d{3})\.IMG(\.png)?$", re.IGNORECASE)
    files = [p for p in source_files(root, "*") if pattern.search(p.name)]
    if not files:
        raise SourceLayoutError(f"{name}: no JPCNN###.IMG / JPCLN###.IMG files under {root}")
    for path in files:
        case = _must_match(pattern, path.name).group(1).upper()
        nodule = case.startswith("JPCLN")
        rec = ImageRecord(
            name,
            "jsrt",
            case,
            path,
            patient_id=f"jsrt:{case}",
            finding_raw="nodule" if nodule else "non-nodule",
            # nodule films serve segmentation only; non-nodule films are normal (§2.3)
            label5="" if nodule else "normal",
            license="JSRT terms (registration; no redistribution)",
            masks=dict(masks.get(case, {})),
        )
        if spec.get("masks") and not rec.masks:
            index.skip(name, path, f"missing mask: no SCR masks for {case} under {spec['masks']}")
        elif rec.masks and len(rec.masks) < len(SCR_ORGANS):
            # a partial set would give a label map with an organ silently absent: the image
            # stays (for classification), without masks, and the gap is reported
            lacking = sorted(organ for organ, role in SCR_ORGANS.items() if role not in rec.masks)
            index.skip(name, path, f"missing mask: SCR lacks the {', '.join(lacking)} mask for {case}")
            rec.masks = {}
        index.records.append(rec)
    return index


def read_scr(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    """SCR holds masks only; its images are the JSRT films (see ``jsrt`` option ``masks``)."""
    masks = _scr_masks(root)
    if not masks:
        raise SourceLayoutError(f"{name}: no SCR masks (<organ>/<id>.gif) under {root}")
    index = SourceIndex()
    for files in masks.values():
        for gif in files.values():
            index.served[str(gif)] = "an SCR mask: read (and accounted) through the jsrt source's masks option"
    for gif in source_files(root, "*.gif"):
        if str(gif) not in index.served:
            index.ignored[str(gif)] = f"an SCR mask of an organ not segmented ({gif.parent.name})"
    return index


# --------------------------------------------------------------------------- NLM
def _clinical(path: Path) -> tuple[str, float | None, str]:
    """(sex, age, reading) from an NLM ClinicalReadings file (Montgomery or Shenzhen style)."""
    if not path.is_file():
        return "", None, ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    sex, age, rest = "", None, []
    for ln in lines:
        if ln.lower().startswith("patient's sex"):
            sex = sex_code(ln.partition(":")[2] or ln[len("patient's sex") :])
        elif ln.lower().startswith("patient's age"):
            age = age_years(ln.partition(":")[2] or ln[len("patient's age") :])
        elif m := re.fullmatch(r"(male|female)\s*,?\s*(\d+)\s*yrs?.*", ln, re.IGNORECASE):
            sex, age = sex_code(m.group(1)), float(m.group(2))
        else:
            rest.append(ln)
    return sex, age, " ".join(rest)


def _mask_dirs(root: Path, spec: Mapping[str, Any]) -> list[Path]:
    dirs = [Path(spec["masks_path"])] if spec.get("masks_path") else []
    return [*dirs, root]


def read_nlm(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules, *, prefix: str) -> SourceIndex:
    index = SourceIndex()
    pattern = re.compile(rf"({prefix}_(\d{{4}})_([01]))\.(png|jpe?g)$", re.IGNORECASE)
    # images are the matching files outside any *mask* folder (masks share the image names)
    images = [
        p
        for p in source_files(root, "*")
        if pattern.search(p.name) and not any("mask" in part.lower() for part in p.relative_to(root).parts)
    ]
    if not images:
        mask_files = [p for p in source_files(root, "*") if pattern.search(p.name)]
        if mask_files:
            raise SourceLayoutError(
                f"{name}: {root} holds {len(mask_files)} {prefix}_####_[01] mask files but no images (files of those "
                f"names outside a *mask* folder): set sources.{name}.path to the folder above the images "
                "(CXR_png/), and masks_path to the masks if they lie elsewhere"
            )
        raise SourceLayoutError(f"{name}: no {prefix}_####_[01] images under {root}")
    # masks: NLM separate left/right, combined per image, or Kaggle-style *_mask.png;
    # Montgomery ships a mask for every film, the Shenzhen masks cover a subset
    required = bool(spec.get("masks_required", prefix == "MCUCXR"))
    found: dict[str, dict[str, Path]] = {}
    for base in _mask_dirs(root, spec):
        for p in source_files(base, "*.png") + source_files(base, "*.gif"):
            m = re.fullmatch(rf"({prefix}_\d{{4}}_[01])(_mask)?", p.stem, re.IGNORECASE)
            if not m:
                continue
            parent = p.parent.name.lower()
            case = m.group(1).upper()
            if parent == "leftmask":
                found.setdefault(case, {}).setdefault("left", p)
            elif parent == "rightmask":
                found.setdefault(case, {}).setdefault("right", p)
            elif m.group(2) or parent in ("mask", "masks"):
                found.setdefault(case, {}).setdefault("lungs", p)
    cases = {_must_match(pattern, p.name).group(1).upper() for p in images}
    for case, files in found.items():
        if case not in cases:
            for f in files.values():
                index.ignored[str(f)] = f"a mask of {case}, a film the source does not hold"
    for path in images:
        m = _must_match(pattern, path.name)
        case, number, flag = m.group(1).upper(), m.group(2), m.group(3)
        reading_file = path.parent.parent / "ClinicalReadings" / f"{case}.txt"
        try:
            sex, age, reading = _clinical(reading_file)
        except OSError as err:
            index.skip(
                name, reading_file, f"clinical reading cannot be read ({err.strerror}): the film has no sex or age"
            )
            sex, age, reading = "", None, ""
        else:
            if reading_file.is_file():
                index.metadata[str(reading_file)] = f"clinical reading of {case}"
        label = "tb" if flag == "1" else "normal"  # the NLM suffix is the class
        masks = found.get(case, {})
        if "left" in masks and "right" in masks:
            masks = {"left": masks["left"], "right": masks["right"]}
        elif ("left" in masks) != ("right" in masks):
            index.skip(name, path, "missing mask: only one of leftMask/rightMask exists")
            for lone in masks.values():
                index.ignored[str(lone)] = (
                    f"a lone lung mask of {case}: both lungs are needed (the film stays without masks)"
                )
            masks = {}
        elif not masks and required:
            # the image stays usable (for classification); its absent mask is reported
            index.skip(name, path, "missing mask: no lung mask file for this image")
        rec = ImageRecord(
            name,
            spec["format"],
            case,
            path,
            patient_id=f"{spec['format']}:{prefix}_{number}",
            sex=sex,
            age=age,
            paediatric=paediatric_flag(age, rules),
            finding_raw=reading or label,
            label5=label,
            license="NLM terms (do not share outside the research group)",
            masks=masks,
        )
        index.records.append(rec)
    return index


def read_montgomery(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    return read_nlm(name, root, spec, rules, prefix="MCUCXR")


def read_shenzhen(name: str, root: Path, spec: Mapping[str, Any], rules: LabelRules) -> SourceIndex:
    return read_nlm(name, root, spec, rules, prefix="CHNCXR")
