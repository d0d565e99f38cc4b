"""Benchmark: synthetic generation throughput, and where its time goes.

Plain script, not a test: ``python bench/bench_synthetic.py``. For each source it times,
in one run, the phantom rendering alone and the whole writer (rendering + exposure +
encoding + atomic writes + ground truth), and prints images per second and the share of
time spent outside rendering. Sizes are the demo's; pass ``--paper`` for the real sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from machine import machine  # bench/machine.py (this folder is on sys.path when run as a script)

from patchcxr.synthetic import generate_source, render, sample_spec
from patchcxr.synthetic.jsrt import JSRT_SIZE, SCR_SIZE

ROOT = Path(__file__).resolve().parents[1]
ROW = "{:<11} {:>11} {:>6} {:>12} {:>12} {:>7} {:>16}"


def params(paper: bool) -> dict:
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if not paper:
        demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())["synthetic"]
        for key, value in demo.items():
            cfg["synthetic"][key] = value if not isinstance(value, dict) else {**cfg["synthetic"].get(key, {}), **value}
    # a handful of images per source is enough for a rate
    for src in ("montgomery", "shenzhen"):
        cfg["synthetic"][src]["counts"] = {"normal": 2, "tb": 2}
    cfg["synthetic"]["kermany"]["counts"] = {"normal": 2, "bacterial": 2, "viral": 0}
    cfg["synthetic"]["cohen"]["counts"] = {"normal": 1, "bacterial": 1, "viral": 1, "covid19": 1}
    cfg["synthetic"]["jsrt"] = {"non_nodule": 3, "nodule": 1}
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return cfg["synthetic"]


def size_of(source: str, p: dict) -> tuple[int, int]:
    if source == "jsrt":
        return JSRT_SIZE, JSRT_SIZE
    if source == "scr":
        return SCR_SIZE, SCR_SIZE
    return p[source]["height"], p[source]["width"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="use the real sources' image sizes")
    args = parser.parse_args()
    p = params(args.paper)
    print(f"machine: {machine()}")
    head = ("source", "size", "images", "render s/img", "write s/img", "img/s", "non-render share")
    print(ROW.format(*head))
    with tempfile.TemporaryDirectory() as tmp:
        for source in ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen"):
            h, w = size_of(source, p)
            t0 = time.perf_counter()
            n = generate_source(source, p, Path(tmp) / source, Path(tmp) / "gt" / source)
            total = (time.perf_counter() - t0) / n
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            for _ in range(n):
                render(sample_spec(rng, "covid19"), h, w)
            rend = (time.perf_counter() - t0) / n
            cells = (
                source,
                f"{h}x{w}",
                n,
                f"{rend:.3f}",
                f"{total:.3f}",
                f"{1 / total:.2f}",
                f"{1 - rend / total:.2f}",
            )
            print(ROW.format(*cells))


if __name__ == "__main__":
    main()
