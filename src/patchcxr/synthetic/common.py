"""What every synthetic source's writer shares: its seeded random streams, the paper's
cohort sheet, the planted effects, the ground-truth sink (``images.tsv``, ``lesions.tsv``,
``labels/``, ``generator.json``) and the encodings more than one source uses."""

from __future__ import annotations

import csv
import io
import json
import logging
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from patchcxr import __version__
from patchcxr.data.labels import LABEL5
from patchcxr.io import atomic_write_bytes, atomic_write_text, encode_png
from patchcxr.synthetic.phantom import Effect, PhantomSpec

# the writers log under the name of the module that dispatches them (as before the split)
log = logging.getLogger("patchcxr.synthetic.sources")

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


def source_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random stream ``index`` of ``stream`` (a source, or one of its parts) under ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), index])


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    """A JPEG file of ``image`` at ``quality`` (Kermany's and Cohen's films)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class Sink:
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
        *,
        labels: np.ndarray | None,
        boxes: list[tuple[str, str, int, int, int, int]],
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


def csv_bytes(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
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


def label_effect(params: Mapping[str, Any], label: str) -> Effect:
    """The effect ``synthetic.effects`` plants in the lungs of class ``label`` (none if unset)."""
    eff = params.get("effects", {}).get(label, {})
    return Effect(float(eff.get("lung_mean_shift", 0.0)), float(eff.get("lung_std_scale", 1.0)))


def progress(items: list[Any], source: str) -> Iterator[Any]:
    """Yield items, logging progress every ~10 % (generation of large cohorts takes minutes)."""
    step = max(1, len(items) // 10)
    for i, item in enumerate(items):
        if i and i % step == 0:
            log.info("%s: %d/%d images", source, i, len(items))
        yield item


def film_shape(cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of a source's films, from its section of the configuration."""
    return int(cfg["height"]), int(cfg["width"])


def patient_plan(counts: Mapping[str, int], per_patient: int) -> list[tuple[str, int, int]]:
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
