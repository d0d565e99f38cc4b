"""Decoding: every container the sources use ends as one channel, bone bright, with its bit depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from patchcxr.data.decode import DecodeError, decode
from tests.helpers import bomb_png, write_dicom

# a radiograph-like ramp: dark (air) on the left, bright (bone) on the right
RAMP = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))


def test_inverted_palette_png_is_decoded_through_its_palette(tmp_path: Path) -> None:
    # the JSRT PNG conversions store 255 - value as index, with an inverted palette
    image = Image.fromarray(255 - RAMP, mode="P")
    image.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    image.save(tmp_path / "jsrt.png")
    d = decode(tmp_path / "jsrt.png")
    assert d.mode == "P" and d.bit_depth == 8
    np.testing.assert_array_equal(d.pixels, RAMP)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_colour_containers_become_grey(tmp_path: Path, mode: str) -> None:
    Image.fromarray(RAMP, mode="L").convert(mode).save(tmp_path / "c.png")
    d = decode(tmp_path / "c.png")
    assert d.pixels.dtype == np.uint8 and d.pixels.ndim == 2
    np.testing.assert_array_equal(d.pixels, RAMP)


def test_16bit_png_keeps_values_and_reports_bits(tmp_path: Path) -> None:
    ramp12 = RAMP.astype(np.uint16) * 16  # 0..4080: 12 significant bits
    Image.fromarray(ramp12).save(tmp_path / "x16.png")
    d = decode(tmp_path / "x16.png")
    assert d.pixels.dtype == np.uint16 and d.bit_depth == 12
    np.testing.assert_array_equal(d.pixels, ramp12)


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    ramp12 = RAMP.astype(np.uint16) * 16
    write_dicom(tmp_path / "m2.dcm", ramp12, "MONOCHROME2")
    write_dicom(tmp_path / "m1.dcm", 4095 - ramp12, "MONOCHROME1")
    m2, m1 = decode(tmp_path / "m2.dcm"), decode(tmp_path / "m1.dcm")
    assert m1.bit_depth == m2.bit_depth == 12
    np.testing.assert_array_equal(m2.pixels, ramp12)
    np.testing.assert_array_equal(m1.pixels, ramp12)


def test_jsrt_raw_is_inverted_and_12_bit(tmp_path: Path) -> None:
    raw = np.zeros((2048, 2048), ">u2")
    raw[:, :1024] = 4000  # air: high raw value on JSRT films
    raw.tofile(tmp_path / "JPCNN001.IMG")
    d = decode(tmp_path / "JPCNN001.IMG", "jsrt")
    assert d.bit_depth == 12 and d.pixels[0, 0] == 95 and d.pixels[0, -1] == 4095


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "truncated"),
        ("zero", "empty file"),
        ("text", "not an image"),
        ("corrupt", "corrupt"),
    ],
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_damaged_files_raise_with_a_reason(tmp_path: Path, damage: str, reason: str, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    noise = np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)
    Image.fromarray(noise).save(path, format=fmt)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zero":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("patientid,finding\n1,COVID-19\n")
    else:  # keep the header, scramble the body
        path.write_bytes(data[:60] + bytes(reversed(data[60:])))
    with pytest.raises(DecodeError, match=reason if damage != "corrupt" else r"corrupt|truncated"):
        decode(path)


def test_truncated_jsrt_raw(tmp_path: Path) -> None:
    (tmp_path / "JPCLN002.IMG").write_bytes(b"\0" * 1000)
    with pytest.raises(DecodeError, match="must be 8388608 bytes"):
        decode(tmp_path / "JPCLN002.IMG", "jsrt")


def test_a_decompression_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "bomb.png").write_bytes(bomb_png(20000))  # 400 M pixels in a few tens of KB
    code = (
        "import sys\n"
        "from patchcxr.data.decode import DecodeError, decode\n"
        "try:\n    decode(sys.argv[1])\nexcept DecodeError as err:\n    print(err)\n"
    )
    peak = tmp_path / "peak"  # the child's own peak resident memory (patchcxr.peakmem: VmHWM)
    args = [sys.executable, "-m", "patchcxr.peakmem", str(peak), "code", code, str(tmp_path / "bomb.png")]
    proc = subprocess.run(args, capture_output=True, text=True)
    reason, peak_kib = proc.stdout.strip(), peak.read_text()
    assert reason.startswith("image too large (20000 × 20000 = 400000000 pixels): over the limit of 64000000")
    # decoded, the image alone would take 400 MB as one byte per pixel; the check takes none
    assert int(peak_kib) < 200 * 1024, peak_kib
    # the limit is a setting: below the image's size a smaller film is refused too
    Image.fromarray(RAMP).save(tmp_path / "small.png")
    with pytest.raises(DecodeError, match="image too large"):
        decode(tmp_path / "small.png", max_pixels=1000)
    assert decode(tmp_path / "small.png", max_pixels=64 * 48).pixels.shape == (48, 64)


def test_exif_orientation_is_applied_and_reported(tmp_path: Path) -> None:
    for orientation, turn in ((6, -1), (8, 1), (3, 2)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(RAMP).save(tmp_path / "o.png", exif=exif)
        d = decode(tmp_path / "o.png")
        assert d.orientation == orientation
        np.testing.assert_array_equal(d.pixels, np.rot90(RAMP, turn))
    Image.fromarray(RAMP).save(tmp_path / "plain.png")
    assert decode(tmp_path / "plain.png").orientation == 1


def test_any_decoder_exception_becomes_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(RAMP).save(tmp_path / "x.png")

    from PIL import ImageFile

    def broken(self: Image.Image) -> None:
        raise MemoryError("decoder gave up")

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    with pytest.raises(DecodeError, match="decoder error: MemoryError: decoder gave up"):
        decode(tmp_path / "x.png")
