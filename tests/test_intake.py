"""Intake that accounts for every file (issue 29): metadata read whatever its encoding, one
bad row or file quarantined alone, DICOM headers checked, no decoder that can start a
program, and the accounting invariant on random mixes of good and bad files."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from patchcxr.data.decode import DecodeError, decode
from patchcxr.data.intake import each_row, path_key, read_table, walk_source
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import read_source
from patchcxr.data.records import ImageRecord, SourceIndex, SourceLayoutError
from tests.helpers import assert_accounted, run_data_stage, synthetic_sources, write_dicom


@pytest.fixture(scope="module")
def rules(test_config: dict[str, Any]) -> LabelRules:
    return LabelRules.from_config(test_config["labels"])


# --------------------------------------------------------------------------- tables
@pytest.mark.parametrize(
    ("encoding", "note"),
    [("utf-8", ""), ("utf-8-sig", ""), ("utf-16", ""), ("utf-16-le", "no byte-order mark"), ("cp1252", "cp1252")],
)
def test_a_metadata_table_reads_in_every_encoding_excel_writes(tmp_path: Path, encoding: str, note: str) -> None:
    path = tmp_path / "metadata.csv"
    path.write_bytes("filename,finding\nà.png,Pneumonia/Viral/COVID-19\nb.png,Normal\n".encode(encoding))
    table = read_table(path, ("filename", "finding"), "cohen")
    assert [r["filename"] for _, r in table.rows] == ["à.png", "b.png"]
    assert [line for line, _ in table.rows] == [2, 3]
    assert (note in table.note) if note else table.note == ""


def test_a_missing_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_text("file_name, finding \nx.png,Normal\n")
    with pytest.raises(SourceLayoutError, match=r"lacks the column\(s\) filename; columns found: file_name, finding$"):
        read_table(path, ("filename", "finding"), "cohen")


def test_a_source_with_two_metadata_files_or_none_is_a_one_line_error(tmp_path: Path, rules: LabelRules) -> None:
    root = tmp_path / "cohen"
    root.mkdir()
    with pytest.raises(SourceLayoutError, match=r"^cohen: no metadata.csv under "):
        read_source("cohen", {"format": "cohen", "path": str(root)}, rules)
    for sub in ("a", "b"):
        (root / sub).mkdir()
        (root / sub / "metadata.csv").write_text("filename,finding\n")
    with pytest.raises(
        SourceLayoutError, match=r"2 files named metadata.csv .*a/metadata.csv, .*b/metadata.csv\): keep one"
    ):
        read_source("cohen", {"format": "cohen", "path": str(root)}, rules)


def test_one_row_that_raises_is_quarantined_alone_and_every_row_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("name\na\nboom\nc\nskip\n")
    table = read_table(path, ("name",), "s")
    index = SourceIndex()

    def handle(line: int, row: dict[str, str]) -> str | None:
        if row["name"] == "skip":
            return "a rule that leaves this row"
        index.records.append(ImageRecord("s", "csv", row["name"], tmp_path / row["name"]))
        if row["name"] == "boom":
            raise PermissionError(13, "Permission denied")  # what is_file() raises in an unreadable folder
        return None

    each_row(index, "s", table, handle)
    assert [r.stem for r in index.records] == ["a", "c"]  # the failed row's record was undone
    assert [(q.file, q.reason) for q in index.quarantine] == [
        (f"{path}:3", "metadata row could not be read: PermissionError: [Errno 13] Permission denied")
    ]
    counts = index.rows[str(path)]
    assert (counts.recorded, counts.quarantined, counts.ignored) == (2, 1, 1)
    assert counts.ignored_rules == {"a rule that leaves this row": 1}


# --------------------------------------------------------------------------- walking
def test_entries_that_are_not_regular_files_are_named_and_not_opened(tmp_path: Path) -> None:
    (tmp_path / "film.png").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink("nowhere.png", tmp_path / "broken.png")
    os.symlink("self.png", tmp_path / "self.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "sub", tmp_path / "linked")
    found = {e.path.name: e.problem for e in walk_source(tmp_path)}
    assert found["film.png"] == ""
    assert found["pipe.png"].startswith("a FIFO (named pipe), not a regular file")
    assert found["broken.png"].startswith("a broken link")
    assert found["self.png"] == "a link loop: not opened"
    assert found["linked"].startswith("a link to a folder: not followed")


# --------------------------------------------------------------------------- DICOM
def _dicom(path: Path, pixel_data: bytes | None = None, **tags: Any) -> None:
    """A DX DICOM of a 64² gradient; ``tags`` override its header, ``pixel_data`` its pixels."""
    from pydicom import dcmread

    write_dicom(path, (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16), "MONOCHROME2")
    ds = dcmread(path)
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixel_data is not None:
        ds.PixelData = pixel_data
    ds.save_as(path)


def test_dicom_headers_are_checked_and_named(tmp_path: Path, rules: LabelRules) -> None:
    root = tmp_path / "dicom"
    root.mkdir()
    _dicom(root / "good.dcm")
    _dicom(root / "ct.dcm", Modality="CT")
    other = (np.arange(64 * 64)[::-1].reshape(64, 64) % 4096).astype(np.uint16)
    _dicom(root / "anonymised.dcm", other.tobytes(), PatientID="")
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = np.arange(64)[None, :] * 4
    _dicom(root / "rgb.dcm", rgb.tobytes(), SamplesPerPixel=3, PhotometricInterpretation="RGB", BitsAllocated=8,
           BitsStored=8, HighBit=7, PlanarConfiguration=0)  # fmt: skip
    frames = np.stack([np.full((64, 64), v, np.uint16) for v in (100, 3000)])
    _dicom(root / "frames.dcm", frames.tobytes(), NumberOfFrames=2)
    (root / "labels.csv").write_bytes("\ufefffile,label\ngood.dcm,normal\nanonymised.dcm,tb\n".encode())  # BOM
    manifest, quarantine = _run(root, tmp_path / "out")
    reasons = dict(zip(quarantine["file"].map(lambda f: Path(f).name), quarantine["reason"], strict=True))
    assert reasons["ct.dcm"] == "DICOM modality CT: not a radiograph (CR, DX accepted)"
    assert reasons["rgb.dcm"].startswith("DICOM photometric interpretation RGB with 3 sample(s) per pixel")
    assert reasons["frames.dcm"] == "multi-frame DICOM (2 frames): one radiograph per file is accepted"
    rows = manifest.set_index("image_id")
    assert set(rows.index) == {"dicom/good", "dicom/anonymised"}
    assert rows.loc["dicom/anonymised", "label5"] == "tb"  # labels.csv read through its BOM
    assert rows.loc["dicom/anonymised", "patient_id"] == "dicom:anonymised"
    assert "blank patient id" in rows.loc["dicom/anonymised", "intake_note"]


def _run(root: Path, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tests.conftest import load_config

    specs = {"dicom": {"format": "dicom", "path": str(root), "label": "normal"}}
    manifest, quarantine = run_data_stage(specs, load_config("config/config.yaml")["labels"], out)
    assert_accounted(specs, out)
    return manifest, quarantine


# --------------------------------------------------------------------------- no programs
def test_no_decoder_starts_a_program_for_a_postscript_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "gs-was-called"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "gs"
    stub.write_text(f'#!/bin/sh\necho "$@" > {marker}\nexit 1\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    film = tmp_path / "film.png"
    film.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto showpage\n%%EOF\n")
    # the control: Pillow left to itself hands this file to Ghostscript, and the stub sees it
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)
    monkeypatch.setattr(EpsImagePlugin, "gs_windows_binary", None, raising=False)
    with pytest.raises(Exception):  # noqa: B017 - whatever Pillow raises when the stub fails
        Image.open(film).load()
    assert marker.exists(), "the stub was not reached: the test could not see a call"
    marker.unlink()
    with pytest.raises(DecodeError, match="its first bytes are those of PostScript"):
        decode(film)
    assert not marker.exists()


# --------------------------------------------------------------------------- the invariant
DAMAGES = ("truncate", "empty", "text", "postscript", "fifo", "link loop", "readme", "blank", "animated", "hidden")


def _damage(path: Path, kind: str, rng: np.random.Generator) -> None:
    if kind == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "postscript":
        path.write_bytes(b"%!PS-Adobe-3.0\nshowpage\n")
    elif kind == "blank":
        Image.new("L", Image.open(path).size, 128).save(path, format=Image.open(path).format)
    elif kind == "animated":
        im = Image.open(path).convert("L")
        im.save(path.with_suffix(".gif"), save_all=True, append_images=[im.rotate(90)])
        path.unlink()
        path.with_suffix(".gif").rename(path)
    elif kind == "fifo":
        os.mkfifo(path.with_name(f"pipe{rng.integers(1_000_000)}{path.suffix}"))
    elif kind == "link loop":
        loop = path.with_name(f"loop{rng.integers(1_000_000)}{path.suffix}")
        os.symlink(loop.name, loop)
    elif kind == "readme":
        path.with_name(f"README{rng.integers(1_000_000)}.txt").write_text("notes")
    elif kind == "hidden":
        path.with_name(f".{path.name}").write_bytes(path.read_bytes())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_mix_of_good_and_bad_files_is_fully_accounted_for(
    seed: int, synthetic_tree: Path, test_config: dict[str, Any], tmp_path: Path
) -> None:
    rng = np.random.default_rng(seed)
    tree = tmp_path / "tree"
    for name in ("kermany", "montgomery"):
        shutil.copytree(synthetic_tree / name, tree / name)
    specs = {k: v for k, v in synthetic_sources(tree).items() if k in ("kermany", "montgomery")}
    films = sorted(p for name in specs for p in (tree / name).rglob("*") if p.suffix in (".jpeg", ".png"))
    films = [p for p in films if "mask" not in str(p).lower()]
    chosen = rng.choice(len(films), size=max(len(DAMAGES), len(films) // 3), replace=False)
    kinds = rng.permutation(np.resize(np.array(DAMAGES), len(chosen)))  # every kind at least once
    damaged = {films[i]: str(k) for i, k in zip(chosen, kinds, strict=True)}
    for path, kind in damaged.items():
        _damage(path, kind, rng)
    manifest, quarantine = run_data_stage(specs, test_config["labels"], tmp_path / "out")
    assert_accounted(specs, tmp_path / "out")
    # every film damaged in place is out of the manifest and named in the quarantine; the
    # others (the controls) are in the manifest
    in_place = {p for p, k in damaged.items() if k in ("truncate", "empty", "text", "postscript", "blank", "animated")}
    kept = {path_key(p) for p in manifest["source_path"]}
    named = {path_key(f) for f in quarantine["file"]}
    assert not {path_key(p) for p in in_place} & kept
    assert {path_key(p) for p in in_place} <= named
    controls = {path_key(p) for p in films} - {path_key(p) for p in in_place}
    assert controls <= kept
    loops = [p for p in (tree / "montgomery").rglob("loop*")] + [p for p in (tree / "kermany").rglob("loop*")]
    assert {path_key(p) for p in loops} <= named  # a link loop is a quarantine row, not an exception


def test_a_row_whose_record_is_dropped_later_counts_as_quarantined(tmp_path: Path, rules: LabelRules) -> None:
    (tmp_path / "data").mkdir()
    Image.new("L", (32, 32), 10).save(tmp_path / "data" / "a.png")
    (tmp_path / "data" / "b").mkdir()
    Image.new("L", (32, 32), 20).save(tmp_path / "data" / "b" / "a.png")  # the same stem again
    (tmp_path / "images.csv").write_text("path,label\ndata/a.png,normal\ndata/b/a.png,normal\n")
    index = read_source("mine", {"format": "csv", "path": str(tmp_path)}, rules)
    counts = index.rows[str(tmp_path / "images.csv")]
    assert (len(index.records), counts.recorded, counts.quarantined) == (1, 1, 1)


def test_a_labels_row_naming_no_dicom_file_is_quarantined_not_silently_defaulted(tmp_path: Path) -> None:
    root = tmp_path / "dicom"
    root.mkdir()
    _dicom(root / "a.dcm")
    (root / "labels.csv").write_text("file,label\na.dcm,tb\nA.DCM ,normal\n")
    _, quarantine = _run(root, tmp_path / "out")
    assert quarantine["reason"].tolist() == ["labels.csv row names no DICOM file of the folder ('A.DCM')"]


def test_a_12_bit_film_stored_in_16_bits_is_not_blank_and_a_flat_one_is() -> None:
    from patchcxr.data.harmonise import blank_reason

    film = np.linspace(1000, 3500, 256 * 256).reshape(256, 256).astype(np.uint16)
    assert blank_reason(film, 0.05) == ""  # 2,500 of 4,095 levels, not of 65,535
    assert blank_reason(np.full((256, 256), 3000, np.uint16), 0.05).startswith("blank or near-constant film")
    assert blank_reason(np.zeros((64, 64), np.uint8), 0.05).startswith("blank or near-constant film")


def test_odd_clinical_readings_and_a_broken_cross_check_csv_stop_nothing(
    synthetic_tree: Path, test_config: dict[str, Any], tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    for name in ("kermany", "montgomery"):
        shutil.copytree(synthetic_tree / name, tree / name)
    reading = next((tree / "montgomery").rglob("ClinicalReadings/*.txt"))
    reading.write_text("Patient's Sex M\nPatient's Age 047Y\nnormal\n")  # no colons
    csv_path = next((tree / "kermany").rglob("Chest_xray_Corona_Metadata.csv"))
    csv_path.write_text("")  # empty: no header
    specs = {k: v for k, v in synthetic_sources(tree).items() if k in ("kermany", "montgomery")}
    manifest, quarantine = run_data_stage(specs, test_config["labels"], tmp_path / "out")
    assert_accounted(specs, tmp_path / "out")
    row = manifest.set_index("image_id").loc[f"montgomery/{reading.stem}"]
    assert (row["sex"], row["age"]) == ("M", "47")
    reasons = dict(zip(quarantine["file"].map(lambda f: Path(f).name), quarantine["reason"], strict=True))
    assert reasons[csv_path.name].startswith("CoronaHack CSV not used for the cross-check: kermany: metadata file")
    assert (manifest["source"] == "kermany").sum() > 0


def test_two_sources_writing_one_patient_namespace_are_a_conflict_row() -> None:
    from patchcxr.data.harmonise import _namespace_conflicts

    df = pd.DataFrame(
        {
            "source": ["kermany", "kermany", "coronahack", "cohen"],
            "patient_id": ["kermany:person1", "kermany:person2", "kermany:person1", "cohen:7"],
        }
    )
    (row,) = _namespace_conflicts(df)
    assert row["source"] == "coronahack,kermany" and row["kind"] == "shared patient namespace"
    assert "1 id(s) occur in more than one of them" in row["detail"]


def test_an_unreadable_folder_and_an_unreadable_table_are_named_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads everything, so the permission errors are injected where the OS raises them."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "film.png").write_bytes(b"x")
    (tmp_path / "metadata.csv").write_text("filename,finding\n")
    scandir, read_bytes = os.scandir, Path.read_bytes

    def locked_scandir(path: Any = ".") -> Any:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    def locked_read(self: Path) -> bytes:
        if self.name == "metadata.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(os, "scandir", locked_scandir)
    monkeypatch.setattr(Path, "read_bytes", locked_read)
    found = {e.path.name: e.problem for e in walk_source(tmp_path)}
    assert found["locked"] == "folder cannot be read (Permission denied): its files are not indexed"
    with pytest.raises(
        SourceLayoutError, match=r"^cohen: metadata file .*metadata.csv cannot be read \(Permission denied\)$"
    ):
        read_table(tmp_path / "metadata.csv", ("filename",), "cohen")
