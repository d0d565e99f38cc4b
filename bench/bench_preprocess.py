"""Benchmark: preprocessing throughput as a ratio to decode-only throughput (issue 4 §6).

Plain script: ``python bench/bench_preprocess.py``. On the same harmonised files it times
(a) decoding only and (b) decoding plus the paper's preprocessing to the segmentation
input (equalisation, gamma, resize to 256²), and prints images per second and the ratio
(goal ≥ 0.7). Files: synthetic films in the real sources' sizes (JSRT 2048² 12-bit,
Montgomery 4892×4020, Shenzhen 3000×2919, Cohen 1024²), harmonised as the workflow does.
It also prints the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine  # bench/machine.py (this folder is on sys.path when run as a script)

from patchcxr.io import encode_png, read_png
from patchcxr.preprocess import PreprocessSettings
from patchcxr.synthetic import render, sample_spec
from patchcxr.synthetic.exposure import EXPOSURES, expose

SIZES = {"jsrt": (2048, 2048), "montgomery": (4892, 4020), "shenzhen": (3000, 2919), "cohen": (1024, 1024)}


def make_files(root: Path, per_source: int) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(0)
    files = []
    for source, (h, w) in SIZES.items():
        for i in range(per_source):
            d = render(sample_spec(rng, "covid19"), h, w)
            intensity = expose(d.density, rng, EXPOSURES["jsrt" if source == "jsrt" else source])
            pixels = np.round(intensity * (4095 if source == "jsrt" else 255)).astype(
                np.uint16 if source == "jsrt" else np.uint8
            )
            path = root / f"{source}-{i}.png"
            path.write_bytes(encode_png(pixels))
            files.append((path, source))
    return files


def timed(fn, files: list[tuple[Path, str]], repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for path, fmt in files:
            fn(path, fmt)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prep = PreprocessSettings(size=256)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.per_source)
        for source in SIZES:
            subset = [f for f in files if f[1] == source]
            dec = timed(lambda p, f: read_png(str(p)), subset, args.repeats)
            full = timed(lambda p, f: prep.image(read_png(str(p)), f), subset, args.repeats)
            print(
                f"{source:<11} {SIZES[source][0]}x{SIZES[source][1]}: decode {len(subset) / dec:7.2f} img/s, "
                f"decode+preprocess {len(subset) / full:7.2f} img/s, ratio {dec / full:.2f}"
            )
        dec = timed(lambda p, f: read_png(str(p)), files, args.repeats)
        full = timed(lambda p, f: prep.image(read_png(str(p)), f), files, args.repeats)
        print(
            f"all sources: decode {len(files) / dec:.2f} img/s, decode+preprocess {len(files) / full:.2f} img/s, "
            f"ratio {dec / full:.2f} (goal >= 0.7)"
        )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
