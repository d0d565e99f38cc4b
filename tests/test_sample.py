"""The data stage on the real development sample (../shared/data/cxr-sample/).

Skipped where the sample is absent (a user's fresh clone has no ../shared).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_SAMPLE, load_config
from tests.helpers import run_data_stage, sample_sources

pytestmark = pytest.mark.skipif(
    not SHARED_SAMPLE.is_dir(), reason="development sample ../shared/data/cxr-sample absent"
)

# images per folder, from the sample's README
README_COUNTS = {
    "cohen": 29,
    "jsrt": 12,
    "montgomery": 14,
    "montgomery_512": 14,
    "shenzhen": 1,
    "shenzhen_512": 20,
    "kermany": 2,
    "kermany_upscaled": 7,
}


@pytest.fixture(scope="module")
def sample_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    cfg = load_config("config/sample.yaml")
    return run_data_stage(sample_sources(), cfg["labels"], tmp_path_factory.mktemp("sample"), shard_size=10)


def test_sample_config_validates() -> None:
    cfg = load_config("config/sample.yaml")
    assert set(README_COUNTS) <= set(cfg["sources"])


# the data stage over the hundred real sample films takes about two CPU minutes: slow tier
@pytest.mark.slow
def test_one_row_per_sample_image_with_the_readme_counts(sample_manifest: Any) -> None:
    manifest, quarantine = sample_manifest
    assert manifest.groupby("source").size().to_dict() == README_COUNTS
    # the only quarantine row: a metadata.csv row repeating an image under another patient id
    assert len(quarantine) == 1 and "repeats an image" in quarantine["reason"].iloc[0]
    cls = manifest.groupby(["source", "label5"]).size().to_dict()
    assert cls[("cohen", "covid19")] == 10 and cls[("cohen", "bacterial")] == 10
    assert cls[("cohen", "viral")] == 3 and cls[("cohen", "normal")] == 6
    assert cls[("montgomery", "tb")] == 10 and cls[("montgomery", "normal")] == 4
    assert cls[("jsrt", "normal")] == 8 and cls[("jsrt", "")] == 4  # nodule films: segmentation only
    assert cls[("kermany_upscaled", "viral")] == 3


@pytest.mark.slow
def test_sample_masks_and_orientation(sample_manifest: Any) -> None:
    manifest, _ = sample_manifest
    masked = manifest[manifest["has_lung_mask"] == "1"].groupby("source").size().to_dict()
    assert masked == {"jsrt": 12, "montgomery": 14, "montgomery_512": 14, "shenzhen": 1, "shenzhen_512": 20}
    assert (manifest.loc[manifest["source"] == "jsrt", "has_heart_mask"] == "1").all()
    for row in manifest[manifest["mask_path"] != ""].itertuples():
        img = np.asarray(Image.open(row.image_path), dtype=float)
        labels = np.asarray(Image.open(row.mask_path))
        lungs = (labels == 2) | (labels == 3)
        # bone bright: within the lungs' bounding box the lungs (air) are darker than the
        # mediastinum, ribs and diaphragm around them, the palette JSRT PNGs included
        rows, cols = np.nonzero(lungs)
        box = np.zeros_like(lungs)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert img[lungs].mean() < img[box & ~lungs].mean(), row.image_id
        # the patient's left lung lies on the image's right
        assert np.nonzero(labels == 2)[1].mean() > np.nonzero(labels == 3)[1].mean(), row.image_id


@pytest.mark.slow
def test_damaged_copy_quarantines_and_keeps_the_rest(tmp_path: Path, sample_manifest: Any) -> None:
    manifest, _ = sample_manifest
    base = tmp_path / "cxr-sample"
    for folder in ("covid-chestxray-dataset", "montgomery-512", "kermany-upscaled4x"):
        shutil.copytree(SHARED_SAMPLE / folder, base / folder)
    # (skip the first file: metadata.csv lists it twice, a quarantine row of its own)
    images = sorted((base / "covid-chestxray-dataset" / "images").iterdir())[3:]
    images[0].write_bytes(images[0].read_bytes()[:5000])  # truncated
    images[1].write_bytes(b"")  # zero bytes
    images[2].write_text("not an image\n")  # non-image with an image name
    (base / "montgomery-512" / "masks" / "MCUCXR_0001_0.png").unlink()  # missing mask file
    (base / "kermany-upscaled4x" / "chest_xray" / "test" / "PNEUMONIA" / "person1_virus_6.jpeg").unlink()
    sources = {k: v for k, v in sample_sources(base).items() if k in ("cohen", "montgomery_512", "kermany_upscaled")}
    damaged, quarantine = run_data_stage(sources, load_config("config/sample.yaml")["labels"], tmp_path / "out")
    reasons = dict(
        zip(quarantine["file"].map(lambda f: Path(f.split(":")[-1]).name), quarantine["reason"], strict=False)
    )
    assert "truncated" in reasons[images[0].name] or "corrupt" in reasons[images[0].name]
    assert "empty file" in reasons[images[1].name]
    assert "not an image" in reasons[images[2].name]
    assert reasons["person1_virus_6.jpeg"] == "metadata row whose image is missing"
    assert reasons["MCUCXR_0001_0.png"].startswith("missing mask")
    # everything healthy is identical to the undamaged run (paths aside)
    damaged_ids = {f"cohen/{p.stem}" for p in images[:3]} | {"kermany_upscaled/person1_virus_6"}
    cols = ["image_id", "patient_id", "label5", "label4", "sha256", "bit_depth", "height", "width", "has_heart_mask"]
    ref = manifest[manifest["source"].isin(sources) & ~manifest["image_id"].isin(damaged_ids)][cols]
    got = damaged[cols]
    changed = got["image_id"] == "montgomery_512/MCUCXR_0001_0"
    assert (damaged.loc[changed, "has_lung_mask"] == "0").all()  # the image stays, without its mask
    assert got.reset_index(drop=True).equals(ref.reset_index(drop=True))
