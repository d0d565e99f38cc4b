"""The bad-input matrix: one damage per case, applied to a fresh copy of the sources.

Each case runs on the synthetic tree and, where ``../shared`` holds it, on the real
development sample. A damaged file ends as one new quarantine row naming the file and the
reason (and strict mode fails naming it); a download or an archive that is wrong fails
with an error naming it and places nothing; a valid container in an unusual form (RGBA,
palette, 16-bit, DICOM MONOCHROME1) is decoded to the right pixels. In every case the
manifest rows of the healthy files equal those of the undamaged copy.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from patchcxr.data.download import ChecksumError, UnsafeArchiveError, fetch_source
from patchcxr.data.harmonise import StrictModeError, build_manifest, pixel_sha256
from tests.conftest import SHARED_SAMPLE, load_config
from tests.helpers import assert_accounted, bomb_png, run_data_stage, sample_sources, synthetic_sources, write_dicom

#: manifest columns that depend on where the copy lies, not on the data
PLACE = ["source_path", "image_path", "mask_path"]


@dataclass(frozen=True)
class Tree:
    """A set of sources: its specs for a copy at ``base`` and which source plays each role."""

    name: str
    base: Path
    specs: Callable[[Path], dict[str, dict[str, Any]]]
    labels: dict[str, Any]
    roles: dict[str, str]  # nlm, nlm2 (a second NLM set), cohen, kermany, jsrt

    def folders(self, sources: list[str]) -> list[Path]:
        """Folders (relative to ``base``) that ``sources`` read, their mask trees included."""
        specs = self.specs(self.base)
        out = set()
        for s in sources:
            for key in ("path", "masks_path", "masks"):
                if specs[s].get(key):
                    out.add(Path(specs[s][key]).relative_to(self.base))
        return sorted(out)


def _trees() -> list[Any]:
    trees = [pytest.param("synthetic", id="synthetic")]
    trees.append(
        pytest.param(
            "sample",
            id="sample",
            marks=pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="development sample ../shared absent"),
        )
    )
    return trees


@pytest.fixture(scope="module", params=_trees())
def tree(request: pytest.FixtureRequest, synthetic_tree: Path, test_config: dict[str, Any]) -> Tree:
    if request.param == "synthetic":
        roles = {"nlm": "montgomery", "nlm2": "shenzhen", "cohen": "cohen", "kermany": "kermany", "jsrt": "jsrt"}
        return Tree("synthetic", synthetic_tree, synthetic_sources, test_config["labels"], roles)
    roles = {"nlm": "montgomery_512", "nlm2": "shenzhen_512", "cohen": "cohen", "kermany": "kermany", "jsrt": "jsrt"}
    return Tree("sample", SHARED_SAMPLE, sample_sources, load_config("config/sample.yaml")["labels"], roles)


#: images kept per Cohen source and films per JSRT source in a copy: enough for every case,
#: and the large Cohen images and the 2048² films decode in seconds
KEEP, KEEP_FILMS = 8, 2


class Copy:
    """A fresh copy of the folders some sources read, the larger sources pruned (the same
    way every time, :func:`_prune`), and helpers to find its files."""

    def __init__(self, tree: Tree, sources: list[str], root: Path, reference: Any = None) -> None:
        self.tree, self.sources, self.root = tree, sources, root
        for rel in tree.folders(sources):
            if not (root / rel).exists():
                shutil.copytree(tree.base / rel, root / rel)
        self.specs = {s: tree.specs(root)[s] for s in sources}
        for spec in self.specs.values():
            _prune(spec)
        self.reference = reference  # the undamaged copy's (manifest, quarantine, root)

    def run(self, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        return run_data_stage(self.specs, self.tree.labels, out)

    def role(self, role: str) -> str:
        return self.tree.roles[role]

    def images(self, role: str, mode: str | None = None) -> list[Path]:
        """The copy's files of a role's source that the undamaged run kept, in manifest order
        (optionally only those Pillow opens in ``mode``)."""
        manifest, _, ref_root = self.reference
        rows = manifest[manifest["source"] == self.role(role)]
        files = [self.root / Path(p).relative_to(ref_root) for p in rows["source_path"]]
        if mode is not None:
            files = [f for f in files if Image.open(f).mode == mode]
        assert files, (role, mode)
        return files

    def image_id(self, role: str, path: Path) -> str:
        return f"{self.role(role)}/{path.stem.removesuffix('.IMG')}"


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


def _prune(spec: dict[str, Any]) -> None:
    """Keep the first :data:`KEEP_FILMS` films of a JSRT folder, or the first :data:`KEEP`
    images of a Cohen metadata.csv (its rows and files); other sources stay whole."""
    root = Path(spec["path"])
    if spec["format"] == "jsrt":
        films = sorted(p for p in root.rglob("*") if re.search(r"JPC[LN]N\d{3}\.IMG", p.name, re.IGNORECASE))
        for p in films[KEEP_FILMS:]:
            p.unlink()
    elif spec["format"] == "cohen":
        meta = next(root.rglob("metadata.csv"))
        fields, rows = _read_csv(meta)
        keep = list(dict.fromkeys(r["filename"] for r in rows))[:KEEP]
        _write_csv(meta, fields, [r for r in rows if r["filename"] in keep])
        for p in (meta.parent / "images").iterdir():
            if p.name not in keep:
                p.unlink()


@dataclass
class Expect:
    """What a case must end as."""

    file: str | None = None  # name of the quarantined file (None: nothing quarantined)
    reason: str = ""  # a substring of the quarantine reason
    changed: set[str] = field(default_factory=set)  # image ids whose rows may differ or vanish
    check: Callable[[pd.DataFrame], None] | None = None  # more checks on the damaged manifest
    error: tuple[type[Exception], str] | None = None  # a download case: the error and its text
    fetch: Callable[[], None] | None = None  # a download case: the download that must fail
    conflict: str = ""  # a substring of a new conflicts.tsv row (kind and detail)


# --------------------------------------------------------------------------- the cases
def truncated(c: Copy) -> Expect:
    f = c.images("nlm")[0]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return Expect(f.name, "corrupt or truncated", {c.image_id("nlm", f)})


def truncated_jsrt(c: Copy) -> Expect:
    f = c.images("jsrt")[0]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    reason = "must be 8388608 bytes" if f.suffix.upper() == ".IMG" else "corrupt or truncated"
    return Expect(f.name, reason, {c.image_id("jsrt", f)})


def corrupt_bytes(c: Copy) -> Expect:
    f = c.images("nlm")[1]
    data = f.read_bytes()
    f.write_bytes(data[:60] + bytes(reversed(data[60:])))  # header kept, body scrambled
    return Expect(f.name, "corrupt or truncated", {c.image_id("nlm", f)})


def zero_bytes(c: Copy) -> Expect:
    f = c.images("cohen")[1]
    f.write_bytes(b"")
    return Expect(f.name, "empty file (0 bytes)", {c.image_id("cohen", f)})


def not_an_image(c: Copy) -> Expect:
    f = c.images("kermany")[0]
    f.write_text("patientid,finding\n1,Pneumonia\n")
    return Expect(f.name, "not an image file", {c.image_id("kermany", f)})


def rgba_png(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[0]
    Image.open(f).convert("RGBA").save(f, format="PNG")
    return Expect()  # grey in RGBA: the same pixels, the same manifest row


def palette_png(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[1]
    pixels = np.asarray(Image.open(f))
    image = Image.fromarray(255 - pixels, mode="P")  # index 0 = white, as the JSRT conversions
    image.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    image.save(f, format="PNG")
    return Expect()


def png_16bit(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[0]
    pixels = np.asarray(Image.open(f)).astype(np.uint16) * 257
    Image.fromarray(pixels).save(f, format="PNG")
    image_id = c.image_id("nlm", f)

    def check(manifest: pd.DataFrame) -> None:
        row = manifest.set_index("image_id").loc[image_id]
        assert row["bit_depth"] == "16" and row["sha256"] == pixel_sha256(pixels)
        np.testing.assert_array_equal(np.asarray(Image.open(row["image_path"])), pixels)

    return Expect(changed={image_id}, check=check)


def dicom_monochrome1(c: Copy) -> Expect:
    """A DICOM folder: a MONOCHROME2 film and the same film stored MONOCHROME1 (inverted
    values). Decoded bone-bright, both have the same pixels: the second is a duplicate."""
    pixels12 = np.asarray(Image.open(c.images("nlm", mode="L")[0])).astype(np.uint16) * 16
    folder = c.root / "dicom"
    folder.mkdir()
    write_dicom(folder / "a.dcm", pixels12, "MONOCHROME2")
    write_dicom(folder / "b.dcm", 4095 - pixels12, "MONOCHROME1")
    c.specs = {"dicom": {"format": "dicom", "path": str(folder), "label": "normal"}}

    def check(manifest: pd.DataFrame) -> None:
        row = manifest.set_index("image_id").loc["dicom/a"]
        assert row["bit_depth"] == "12" and row["sha256"] == pixel_sha256(pixels12)

    return Expect("b.dcm", "duplicate image: same pixels (sha256) as dicom/a", check=check)


def _edit_cohen(c: Copy, column: str, value: str) -> Expect:
    f = c.images("cohen")[2]
    meta = next(c.root.rglob("metadata.csv"))
    fields, rows = _read_csv(meta)
    hits = [r for r in rows if r["filename"] == f.name]
    assert len(hits) == 1
    hits[0][column] = value
    _write_csv(meta, fields, rows)
    reason = "excluded view 'L'" if column == "view" else f"unknown label {value!r}"
    return Expect(f.name, reason, {c.image_id("cohen", f)})


def lateral_view(c: Copy) -> Expect:
    return _edit_cohen(c, "view", "L")


def unknown_label(c: Copy) -> Expect:
    return _edit_cohen(c, "finding", "Martian flu")


def missing_mask_file(c: Copy) -> Expect:
    f = c.images("nlm")[0]
    spec = c.specs[c.role("nlm")]
    base = Path(spec.get("masks_path") or spec["path"])
    masks = sorted(p for p in base.rglob(f"{f.stem}*") if p != f and "mask" in str(p.relative_to(base)).lower())
    assert masks, f
    masks[0].unlink()
    image_id = c.image_id("nlm", f)

    def check(manifest: pd.DataFrame) -> None:  # the image stays, without a mask
        row = manifest.set_index("image_id").loc[image_id]
        assert row["has_lung_mask"] == "0" and row["mask_path"] == ""

    return Expect(f.name, "missing mask", {image_id}, check)


def missing_scr_heart(c: Copy) -> Expect:
    f = c.images("jsrt")[0]
    case = f.name.split(".")[0].upper()
    spec = c.specs[c.role("jsrt")]
    hearts = [p for p in Path(spec["masks"]).rglob("*.gif") if p.parent.name == "heart" and p.stem.upper() == case]
    assert hearts, case
    hearts[0].unlink()
    image_id = c.image_id("jsrt", f)

    def check(manifest: pd.DataFrame) -> None:  # no half label map: no mask at all
        row = manifest.set_index("image_id").loc[image_id]
        assert row["has_lung_mask"] == "0" and row["has_heart_mask"] == "0"

    return Expect(f.name, "missing mask: SCR lacks the heart mask", {image_id}, check)


def same_image_in_two_sources(c: Copy) -> Expect:
    f = c.images("nlm")[0]
    target = c.images("nlm2")[0]
    copy = target.with_name("CHNCXR_9999_0" + f.suffix)
    shutil.copy2(f, copy)
    return Expect(copy.name, f"duplicate image: same pixels (sha256) as {c.image_id('nlm', f)}")


def metadata_row_without_image(c: Copy) -> Expect:
    f = c.images("cohen")[0]
    f.unlink()
    return Expect(f.name, "metadata row whose image is missing", {c.image_id("cohen", f)})


# ------------------------------------------------------------------ download cases
def _fetch(c: Copy, name: str, data: bytes, sha256: str | None = None) -> None:
    served = c.root / "served" / name
    served.parent.mkdir(parents=True, exist_ok=True)
    served.write_bytes(data)
    spec: dict[str, Any] = {"url": served.as_uri(), "retries": 0}
    if sha256:
        spec["sha256"] = sha256
    fetch_source("downloaded", spec, c.root / "downloads" / "downloaded")


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def wrong_checksum(c: Copy) -> Expect:
    data = c.images("nlm")[0].read_bytes()
    return Expect(error=(ChecksumError, "image.png: sha256 "), fetch=lambda: _fetch(c, "image.png", data, "0" * 64))


def archive_parent_member(c: Copy) -> Expect:
    data = c.images("nlm")[0].read_bytes()
    archive = _tar({"set/ok.png": data, "set/../../escaped.png": data})
    return Expect(error=(UnsafeArchiveError, "climbs out with '..'"), fetch=lambda: _fetch(c, "set.tar.gz", archive))


def archive_absolute_member(c: Copy) -> Expect:
    data = c.images("nlm")[0].read_bytes()
    archive = _tar({"ok.png": data, str(c.root / "escaped.png"): data})
    return Expect(error=(UnsafeArchiveError, "absolute member path"), fetch=lambda: _fetch(c, "set.tgz", archive))


def zip_parent_member(c: Copy) -> Expect:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.png", c.images("nlm")[0].read_bytes())
        zf.writestr("../escaped.png", b"x")
    data = buf.getvalue()
    return Expect(error=(UnsafeArchiveError, "climbs out with '..'"), fetch=lambda: _fetch(c, "set.zip", data))


# ------------------------------------------------------------------ hostile files
def _cohen_row(c: Copy, f: Path, **changes: str) -> None:
    """Change the metadata.csv row of Cohen image ``f``."""
    meta = next(c.root.rglob("metadata.csv"))
    fields, rows = _read_csv(meta)
    hits = [r for r in rows if r["filename"] == f.name]
    assert len(hits) == 1
    hits[0].update(changes)
    _write_csv(meta, fields, rows)


def _stored(c: Copy, role: str, f: Path) -> np.ndarray:
    """The undamaged run's decoded pixels of ``f`` (its stored PNG)."""
    manifest, _, _ = c.reference
    row = manifest.set_index("image_id").loc[c.image_id(role, f)]
    return np.asarray(Image.open(row["image_path"]))


def decompression_bomb(c: Copy) -> Expect:
    f = c.images("cohen")[3]
    f.write_bytes(bomb_png())
    assert f.stat().st_size < 100_000
    return Expect(f.name, "image too large (20000 × 20000 = 400000000 pixels)", {c.image_id("cohen", f)})


def metadata_path_outside(c: Copy) -> Expect:
    f = c.images("cohen")[2]
    outside = c.root / "elsewhere" / "secret.png"  # a real image, outside the source folder
    outside.parent.mkdir()
    shutil.copy2(f, outside)
    source = Path(c.specs[c.role("cohen")]["path"])
    images = next(source.rglob("metadata.csv")).parent / "images"
    _cohen_row(c, f, filename=os.path.relpath(outside, images))
    return Expect("secret.png", "metadata path leads outside the source folder", {c.image_id("cohen", f)})


def symlink_outside(c: Copy) -> Expect:
    f = c.images("kermany")[1]
    outside = c.root / "elsewhere" / f.name
    outside.parent.mkdir(exist_ok=True)
    shutil.move(f, outside)
    f.symlink_to(outside)
    return Expect(f.name, "path leads outside the source folder", {c.image_id("kermany", f)})


def exif_orientation(c: Copy) -> Expect:
    f = c.images("cohen")[1]
    pixels = _stored(c, "cohen", f)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    png = f.with_suffix(".png")
    Image.fromarray(pixels).save(png, format="PNG", exif=exif)
    if png != f:
        f.unlink()
        _cohen_row(c, f, filename=png.name)
    image_id = c.image_id("cohen", f)

    def check(manifest: pd.DataFrame) -> None:
        row = manifest.set_index("image_id").loc[image_id]
        assert row["orientation"] == "6" and (int(row["height"]), int(row["width"])) == pixels.shape[::-1]
        np.testing.assert_array_equal(np.asarray(Image.open(row["image_path"])), np.rot90(pixels, -1))

    return Expect(changed={image_id}, check=check)


def corrupt_crc(c: Copy) -> Expect:
    f = next(p for p in c.images("nlm") if p.suffix.lower() == ".png")
    data = bytearray(f.read_bytes())
    data[8 + 8 + 13] ^= 0xFF  # the IHDR chunk's CRC
    f.write_bytes(bytes(data))
    return Expect(f.name, "corrupt or truncated image", {c.image_id("nlm", f)})


def tiff_file(c: Copy) -> Expect:
    f = c.images("cohen")[4]
    tiff = f.with_suffix(".tif")
    Image.fromarray(_stored(c, "cohen", f)).save(tiff, format="TIFF")
    f.unlink()
    _cohen_row(c, f, filename=tiff.name)
    return Expect()  # the same pixels: the same manifest row


def alpha_hides_pixels(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[0]
    rgba = Image.open(f).convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[: alpha.shape[0] // 4] = 0  # the top quarter transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(f, format="PNG")
    return Expect(f.name, "alpha channel makes", {c.image_id("nlm", f)})


def unreadable_file(c: Copy) -> Expect:
    if os.geteuid() == 0:
        pytest.skip("root reads every file: permissions cannot be tested as root")
    f = c.images("nlm")[1]
    f.chmod(0)
    return Expect(f.name, "permission denied", {c.image_id("nlm", f)})


def newline_in_name(c: Copy) -> Expect:
    f = c.images("cohen")[5]
    odd = f.with_name(f"{f.stem}\nx{f.suffix}")
    f.rename(odd)
    _cohen_row(c, f, filename=odd.name)
    return Expect(f"{f.stem}\\x0ax{f.suffix}", "file name holds control characters", {c.image_id("cohen", f)})


#: compressed DICOM transfer syntaxes a hospital sends (GDCM encodes them here)
TRANSFER_SYNTAXES = {
    "jpeg_lossless.dcm": "JPEGLosslessProcess14_1",
    "jpeg_ls.dcm": "JPEGLSLossless",
    "jpeg2000.dcm": "JPEG2000Lossless",
    "rle.dcm": "RLELossless",
}


def _transcode(src: Path, dst: Path, syntax: str) -> None:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


def dicom_compressed(c: Copy) -> Expect:
    """A DICOM folder of one film in each compressed transfer syntax (different pixel
    values each: no duplicates), and one film in a syntax nothing decodes (MPEG-2 video)."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID

    base = np.asarray(Image.open(c.images("nlm", mode="L")[0])).astype(np.uint16) * 16
    folder = c.root / "dicom"
    folder.mkdir()
    expected = {}
    for k, (name, syntax) in enumerate(TRANSFER_SYNTAXES.items()):
        pixels = np.clip(base + k, 0, 4095)
        write_dicom(folder / "plain.tmp", pixels, "MONOCHROME2")
        _transcode(folder / "plain.tmp", folder / name, syntax)
        expected[f"dicom/{Path(name).stem}"] = pixel_sha256(pixels)
    write_dicom(folder / "plain.tmp", base, "MONOCHROME2")
    odd = dcmread(folder / "plain.tmp")
    odd.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 Main Profile
    odd.PixelData = encapsulate([b"\0\0\1\xb3 not a picture"])
    odd.save_as(folder / "video.dcm")
    (folder / "plain.tmp").unlink()
    c.specs = {"dicom": {"format": "dicom", "path": str(folder), "label": "normal"}}

    def check(manifest: pd.DataFrame) -> None:
        got = manifest.set_index("image_id")
        assert {i: got.loc[i, "sha256"] for i in expected} == expected  # every syntax decoded exactly

    return Expect("video.dcm", "DICOM transfer syntax MPEG2 Main Profile", check=check)


# ------------------------------------------------------------------ intake (issue 29)
#: Cohen metadata columns the reader uses (an edit of another column changes no row)
COHEN_USED = ("filename", "folder", "finding", "patientid", "view", "sex", "age", "modality", "license")


def _rewrite_cohen_metadata(c: Copy, encoding: str, edit: Callable[[list[dict[str, str]]], None] | None = None) -> None:
    meta = next(c.root.rglob("metadata.csv"))
    fields, rows = _read_csv(meta)
    if edit is not None:
        edit(rows)
    text = io.StringIO()
    writer = csv.DictWriter(text, fields)
    writer.writeheader()
    writer.writerows(rows)
    meta.write_bytes(text.getvalue().encode(encoding))


def _unused_column(rows: list[dict[str, str]]) -> str:
    return next(k for k in rows[0] if k not in COHEN_USED)


def metadata_utf16(c: Copy) -> Expect:
    _rewrite_cohen_metadata(c, "utf-16")  # with its byte-order mark, as Excel writes it
    return Expect()


def metadata_cp1252(c: Copy) -> Expect:
    def accent(rows: list[dict[str, str]]) -> None:
        column = _unused_column(rows)
        for r in rows:
            r[column] = "Besançon, naïve"

    _rewrite_cohen_metadata(c, "cp1252", accent)
    return Expect()


def metadata_long_cell(c: Copy) -> Expect:
    def long(rows: list[dict[str, str]]) -> None:
        rows[0][_unused_column(rows)] = "x" * 200_000  # over csv's default field limit of 128 KiB

    _rewrite_cohen_metadata(c, "utf-8", long)
    return Expect()


def metadata_row_link_loop(c: Copy) -> Expect:
    f = c.images("cohen")[3]
    loop = f.with_name("loop.png")
    os.symlink(loop.name, loop)  # a link to itself
    _cohen_row(c, f, filename=loop.name)
    return Expect(loop.name, "a link loop: not opened", {c.image_id("cohen", f)})


def _cohen_value(c: Copy, column: str, value: str, check: Callable[[pd.Series], None]) -> Expect:
    f = c.images("cohen")[4]
    _cohen_row(c, f, **{column: value})
    image_id = c.image_id("cohen", f)

    def checked(manifest: pd.DataFrame) -> None:
        check(manifest.set_index("image_id").loc[image_id])

    return Expect(changed={image_id}, check=checked)


def age_not_in_years(c: Copy) -> Expect:
    def check(row: pd.Series) -> None:
        assert row["age"] == "" and "is not an age in years" in row["intake_note"], row.to_dict()

    return _cohen_value(c, "age", "19650312", check)


def blank_patient_id(c: Copy) -> Expect:
    f = c.images("cohen")[4]

    def check(row: pd.Series) -> None:
        assert row["patient_id"] == f"cohen:{f.stem}" and "blank patient id" in row["intake_note"], row.to_dict()

    return _cohen_value(c, "patientid", "  ", check)


def tab_in_patient_id(c: Copy) -> Expect:
    def check(row: pd.Series) -> None:
        assert row["patient_id"] == "cohen:P 7 x" and "control characters" in row["intake_note"], row.to_dict()

    return _cohen_value(c, "patientid", "P\t7\nx", check)


def kermany_other_label_folder(c: Copy) -> Expect:
    f = c.images("kermany")[0]
    other = f.parent.parent / "COVID" / f.name
    other.parent.mkdir()
    shutil.copy2(f, other)
    return Expect(f.name, "label folder 'COVID' is not NORMAL or PNEUMONIA")


def kermany_folder_with_a_space(c: Copy) -> Expect:
    f = c.images("kermany")[0]
    spaced = f.parent.parent / f"{f.parent.name} " / f.name
    spaced.parent.mkdir()
    f.rename(spaced)
    return Expect(f.name, "by case or white space", {c.image_id("kermany", f)})


def fifo_in_a_source(c: Copy) -> Expect:
    f = c.images("kermany")[0]
    os.mkfifo(f.with_name("pipe.jpeg"))
    return Expect("pipe.jpeg", "a FIFO (named pipe), not a regular file")


def undecodable_file_name(c: Copy) -> Expect:
    f = c.images("kermany")[0]
    shutil.copy2(f, f.parent / os.fsdecode(b"IM-0999-\xff.jpeg"))
    return Expect("IM-0999-\\xff.jpeg", "file name is not valid UTF-8")


def animated_png(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[0]
    im = Image.open(f)
    im.save(f, format="PNG", save_all=True, append_images=[Image.eval(im, lambda v: 255 - v)])
    return Expect(f.name, "2 frames (an animated or multi-page PNG)", {c.image_id("nlm", f)})


def animated_gif(c: Copy) -> Expect:
    f = c.images("cohen")[5]
    gif = f.with_suffix(".gif")
    im = Image.open(f).convert("L")
    im.save(gif, format="GIF", save_all=True, append_images=[Image.eval(im, lambda v: 255 - v)])
    f.unlink()
    _cohen_row(c, f, filename=gif.name)
    return Expect(gif.name, "2 frames (an animated or multi-page GIF)", {c.image_id("cohen", f)})


def _refused_format(c: Copy, data: bytes, said: str) -> Expect:
    f = c.images("nlm")[1]
    f.write_bytes(data)
    return Expect(f.name, f"its first bytes are those of {said}", {c.image_id("nlm", f)})


def postscript_as_png(c: Copy) -> Expect:
    return _refused_format(c, b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n", "PostScript")


def psd_as_png(c: Copy) -> Expect:
    return _refused_format(c, b"8BPS\x00\x01" + bytes(64), "Photoshop (PSD)")


def jpeg2000_as_png(c: Copy) -> Expect:
    return _refused_format(c, b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64), "JPEG 2000")


def blank_film(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[0]
    Image.new("L", Image.open(f).size, 0).save(f, format="PNG")
    return Expect(f.name, "blank or near-constant film", {c.image_id("nlm", f)})


def small_alpha_flattened(c: Copy) -> Expect:
    f = c.images("nlm", mode="L")[1]
    rgba = Image.open(f).convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:2, :20] = 0  # a few pixels of a corner, as the Cohen film's cosmetic alpha
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(f, format="PNG")
    image_id = c.image_id("nlm", f)

    def check(manifest: pd.DataFrame) -> None:
        row = manifest.set_index("image_id").loc[image_id]
        assert "alpha channel: 40 pixels" in row["intake_note"] and "flattened over black" in row["intake_note"]
        assert not np.asarray(Image.open(row["image_path"]))[:2, :20].any()

    return Expect(changed={image_id}, check=check)


def _mask_refused(c: Copy, write: Callable[[Path, np.ndarray], None], reason: str) -> Expect:
    """Damage the first lung mask of the first NLM film: ``write(mask, values)`` replaces
    the file; the film must stay, without masks, and the mask be named with ``reason``."""
    f = c.images("nlm")[0]
    spec = c.specs[c.role("nlm")]
    base = Path(spec.get("masks_path") or spec["path"])
    masks = sorted(p for p in base.rglob(f"{f.stem}*") if p != f and "mask" in str(p.relative_to(base)).lower())
    assert masks, f
    write(masks[0], np.asarray(Image.open(masks[0]).convert("L")))
    image_id = c.image_id("nlm", f)

    def check(manifest: pd.DataFrame) -> None:  # the film stays, without masks
        row = manifest.set_index("image_id").loc[image_id]
        assert row["has_lung_mask"] == "0" and row["mask_path"] == ""

    return Expect(masks[0].name, f"mask refused (the film stays, without masks): {reason}", {image_id}, check)


def _values_as(rewrite: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path, np.ndarray], None]:
    """A mask writer that stores ``rewrite(values)`` in the mask's own format."""

    def write(mask: Path, values: np.ndarray) -> None:
        Image.fromarray(rewrite(values)).save(mask, format="PNG" if mask.suffix.lower() == ".png" else "GIF")

    return write


def mask_of_zeros_and_ones(c: Copy) -> Expect:
    return _mask_refused(c, _values_as(lambda v: (v >= 128).astype(np.uint8)), "mask values {0, 1}")


def mask_all_foreground(c: Copy) -> Expect:
    return _mask_refused(c, _values_as(lambda v: np.full_like(v, 255)), "mask covers every pixel")


def mask_animated(c: Copy) -> Expect:
    def two_frames(mask: Path, values: np.ndarray) -> None:  # a two-frame GIF under the mask's own name
        im = Image.fromarray(values)
        with io.BytesIO() as buf:
            im.save(buf, format="GIF", save_all=True, append_images=[Image.eval(im, lambda v: 255 - v)])
            mask.write_bytes(buf.getvalue())

    return _mask_refused(c, two_frames, "unreadable mask: 2 frames (an animated or multi-page GIF)")


def mask_empty(c: Copy) -> Expect:
    return _mask_refused(c, _values_as(np.zeros_like), "mask is empty")


def scr_one_lung(c: Copy) -> Expect:
    f = c.images("jsrt")[0]
    case = f.name.split(".")[0].upper()
    spec = c.specs[c.role("jsrt")]
    left = next(
        p for p in Path(spec["masks"]).rglob("*.gif") if p.parent.name == "left lung" and p.stem.upper() == case
    )
    Image.new("L", Image.open(left).size, 0).save(left, format="GIF")
    image_id = c.image_id("jsrt", f)

    def check(manifest: pd.DataFrame) -> None:  # a one-lung map is no ground truth: no mask at all
        row = manifest.set_index("image_id").loc[image_id]
        assert row["has_lung_mask"] == "0" and row["has_heart_mask"] == "0"

    return Expect(left.name, "mask is empty", {image_id}, check)


def csv_label_against_folder(c: Copy) -> Expect:
    meta = next(c.root.rglob("Chest_xray_Corona_Metadata.csv"), None)
    if meta is None:
        pytest.skip("no CoronaHack CSV beside this Kermany tree")
    fields, rows = _read_csv(meta)
    names = {p.name for p in c.images("kermany") if p.parent.name == "NORMAL"}
    hit = next((r for r in rows if r["X_ray_image_name"] in names), None)
    if hit is None:
        pytest.skip("no CSV row for a NORMAL film of this tree")
    hit["Label"] = "Pnemonia"
    _write_csv(meta, fields, rows)
    return Expect(conflict="CSV label against folder: Chest_xray_Corona_Metadata.csv line")


def same_pixels_other_label(c: Copy) -> Expect:
    f = next(p for p in c.images("nlm") if p.stem.endswith("_0"))
    target = c.images("nlm2")[0]
    copy = target.with_name("CHNCXR_9998_1" + f.suffix)  # the same film, labelled TB
    shutil.copy2(f, copy)
    return Expect(
        copy.name,
        f"duplicate image: same pixels (sha256) as {c.image_id('nlm', f)}",
        conflict="same pixels, different labels",
    )


#: case → (its function, the roles of the sources its run reads)
CASES: dict[str, tuple[Callable[[Copy], Expect], list[str]]] = {
    "truncated image": (truncated, ["nlm"]),
    "truncated JSRT file": (truncated_jsrt, ["jsrt"]),
    "corrupt bytes": (corrupt_bytes, ["nlm"]),
    "zero-byte file": (zero_bytes, ["cohen"]),
    "non-image with an image name": (not_an_image, ["kermany"]),
    "RGBA PNG": (rgba_png, ["nlm"]),
    "palette PNG": (palette_png, ["nlm"]),
    "16-bit PNG": (png_16bit, ["nlm"]),
    "DICOM MONOCHROME1": (dicom_monochrome1, ["nlm"]),
    "lateral view": (lateral_view, ["cohen"]),
    "unknown label": (unknown_label, ["cohen"]),
    "missing mask file": (missing_mask_file, ["nlm"]),
    "missing SCR heart mask": (missing_scr_heart, ["jsrt"]),
    "same image in two sources": (same_image_in_two_sources, ["nlm", "nlm2"]),
    "metadata row whose image is missing": (metadata_row_without_image, ["cohen"]),
    "wrong checksum on download": (wrong_checksum, ["nlm"]),
    "tar member with ../": (archive_parent_member, ["nlm"]),
    "tar member with an absolute path": (archive_absolute_member, ["nlm"]),
    "zip member with ../": (zip_parent_member, ["nlm"]),
    "decompression bomb": (decompression_bomb, ["cohen"]),
    "metadata path outside the source": (metadata_path_outside, ["cohen"]),
    "symlink to a file outside the source": (symlink_outside, ["kermany"]),
    "EXIF orientation 6": (exif_orientation, ["cohen"]),
    "PNG with a corrupt CRC": (corrupt_crc, ["nlm"]),
    "TIFF": (tiff_file, ["cohen"]),
    "alpha channel that hides pixels": (alpha_hides_pixels, ["nlm"]),
    "unreadable file permission": (unreadable_file, ["nlm"]),
    "newline in a file name": (newline_in_name, ["cohen"]),
    "compressed DICOM transfer syntaxes": (dicom_compressed, ["nlm"]),
    "metadata in UTF-16": (metadata_utf16, ["cohen"]),
    "metadata in cp1252": (metadata_cp1252, ["cohen"]),
    "metadata cell over 128 KiB": (metadata_long_cell, ["cohen"]),
    "metadata row naming a link loop": (metadata_row_link_loop, ["cohen"]),
    "age that is a date": (age_not_in_years, ["cohen"]),
    "blank patient id": (blank_patient_id, ["cohen"]),
    "tab and newline in a patient id": (tab_in_patient_id, ["cohen"]),
    "Kermany label folder COVID": (kermany_other_label_folder, ["kermany"]),
    "Kermany label folder with a trailing space": (kermany_folder_with_a_space, ["kermany"]),
    "FIFO in a source": (fifo_in_a_source, ["kermany"]),
    "file name that is not UTF-8": (undecodable_file_name, ["kermany"]),
    "animated PNG": (animated_png, ["nlm"]),
    "animated GIF": (animated_gif, ["cohen"]),
    "PostScript renamed .png": (postscript_as_png, ["nlm"]),
    "PSD renamed .png": (psd_as_png, ["nlm"]),
    "JPEG 2000 renamed .png": (jpeg2000_as_png, ["nlm"]),
    "blank film": (blank_film, ["nlm"]),
    "small alpha flattened": (small_alpha_flattened, ["nlm"]),
    "mask of 0 and 1": (mask_of_zeros_and_ones, ["nlm"]),
    "mask all foreground": (mask_all_foreground, ["nlm"]),
    "mask empty": (mask_empty, ["nlm"]),
    "animated GIF mask": (mask_animated, ["nlm"]),
    "SCR with one lung empty": (scr_one_lung, ["jsrt"]),
    "CSV label against the folder": (csv_label_against_folder, ["kermany"]),
    "same pixels under another label": (same_pixels_other_label, ["nlm", "nlm2"]),
}


@pytest.fixture(scope="module")
def references() -> dict[tuple[str, ...], Any]:
    """Undamaged runs, one per (tree, sources) pair, filled on first use."""
    return {}


def _reference(tree: Tree, sources: list[str], refs: dict[tuple[str, ...], Any], tmp: Path) -> Any:
    """The undamaged (pruned) copy's manifest, quarantine and folder."""
    key = (tree.name, *sources)
    if key not in refs:
        root = tmp / "_".join(key)
        copy = Copy(tree, sources, root / "tree")
        refs[key] = (*copy.run(root / "out"), root / "tree")
    return refs[key]


def _healthy(manifest: pd.DataFrame, changed: set[str]) -> pd.DataFrame:
    return manifest.loc[~manifest["image_id"].isin(changed)].drop(columns=PLACE).reset_index(drop=True)


def _rows(quarantine: pd.DataFrame) -> Counter[tuple[str, str]]:
    """Quarantine rows as (file name, reason), counted."""
    return Counter(zip(quarantine["file"].map(lambda f: Path(f).name), quarantine["reason"], strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_matrix(
    case: str, tree: Tree, references: dict[tuple[str, ...], Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    damage, roles = CASES[case]
    sources = [tree.roles[r] for r in roles]
    tmp = tmp_path_factory.mktemp("bad")
    reference = _reference(tree, sources, references, tmp_path_factory.getbasetemp() / "refs")
    ref_manifest, ref_quarantine, _ = reference
    copy = Copy(tree, sources, tmp / "tree", reference)
    expect = damage(copy)

    if expect.fetch is not None:  # a download case: a clear error, and nothing placed
        kind, text = expect.error  # type: ignore[misc]
        with pytest.raises(kind, match=text):
            expect.fetch()
        assert not (copy.root / "downloads" / "downloaded").exists()
        assert not list(tmp.rglob("escaped.png"))
        return

    manifest, quarantine = copy.run(tmp / "out")
    assert_accounted(copy.specs, tmp / "out")
    if expect.conflict:
        conflicts = pd.read_csv(tmp / "out" / "conflicts.tsv", sep="\t", dtype=str).fillna("")
        said = (conflicts["kind"] + ": " + conflicts["detail"]).tolist()
        assert any(expect.conflict in c for c in said), said
    # exactly the expected new quarantine rows (the undamaged run's own rows aside)
    new = _rows(quarantine) - (_rows(ref_quarantine) if copy.specs.keys() == set(sources) else Counter())
    if expect.file is None:
        assert not new, new
    else:
        assert len(new) == 1, new
        ((name, reason),) = new
        assert name == expect.file and expect.reason in reason, (name, reason)
        # strict mode fails, naming the file and the reason
        shards = sorted((tmp / "out" / "shards").rglob("[0-9]*.tsv"))
        with pytest.raises(StrictModeError, match=rf"{re.escape(expect.file)}: .*{re.escape(expect.reason)}"):
            build_manifest(
                [p for p in shards if not p.name.endswith(".q.tsv")],
                sorted((tmp / "out").rglob("*.q.tsv")),
                tmp / "strict" / "manifest.tsv",
                tmp / "strict" / "quarantine.tsv",
                source_order=list(copy.specs),
                strict=True,
            )
        assert not (tmp / "strict" / "manifest.tsv").exists()
    if expect.check is not None:
        expect.check(manifest)
    # the healthy files' rows equal the undamaged run's
    if copy.specs.keys() == set(sources):
        pd.testing.assert_frame_equal(_healthy(manifest, expect.changed), _healthy(ref_manifest, expect.changed))
