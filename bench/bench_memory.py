"""Benchmark: peak resident memory of the segmentation rules at the paper's settings.

Plain script: ``python bench/bench_memory.py``. Each case runs in a fresh child process
and reports its own peak RSS (VmHWM, through ``python -m patchcxr.peakmem``); the goal is
under 4 GB for every rule at default settings (issue 4 §6):

* ``train_segmentation``: FC-DenseNet103, batch 2 at 256², three optimiser steps, with the
  training set of the paper (247 JSRT films) held in memory as the rule holds it;
* ``predict_masks``: FC-DenseNet103, batch 8 of Montgomery-size films (4892×4020) decoded,
  preprocessed, predicted, back-projected and written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from machine import machine  # bench/machine.py

TRAIN = """
import torch, numpy as np
from patchcxr.models.segmentation import fc_densenet103
from patchcxr.segmentation.train import partial_cross_entropy
x_all = torch.rand(247, 1, 256, 256)            # the paper's 247 JSRT films at 256²
y_all = torch.randint(0, 4, (247, 256, 256))
model = fc_densenet103()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)
for step in range(3):
    idx = torch.randint(0, 247, (2,))
    opt.zero_grad()
    partial_cross_entropy(model(x_all[idx]), y_all[idx], 0.5).backward()
    opt.step()
"""

PREDICT = """
import sys, json, numpy as np
from pathlib import Path
from patchcxr.io import atomic_write_bytes
from patchcxr.models.state import state_to_bytes
from patchcxr.models.segmentation import fc_densenet103
from patchcxr.preprocess import PreprocessSettings
from patchcxr.models.state import Runtime
from patchcxr.segmentation.predict import predict_shard
from patchcxr.io import encode_png
tmp = Path(sys.argv[1])
rng = np.random.default_rng(0)
rows = []
for i in range(8):
    p = tmp / f"MCUCXR_{i:04d}_0.png"
    p.write_bytes(encode_png(rng.integers(0, 255, (4892, 4020), dtype=np.uint8)))
    rows.append(f"mc/MCUCXR_{i:04d}_0\\tmontgomery\\t{p}")
(tmp / "manifest.tsv").write_text("image_id\\tformat\\timage_path\\n" + "\\n".join(rows) + "\\n")
m = fc_densenet103()
atomic_write_bytes(tmp / "m.pt", state_to_bytes({"arch": "fcdensenet", "n_classes": 4, "state_dict": m.state_dict(),
    "options": json.dumps({"down_blocks": [4, 5, 7, 10, 12], "bottleneck_layers": 15, "growth": 16,
                           "first_channels": 48, "dropout": 0.2}),
    "preprocessing": json.dumps(PreprocessSettings(size=256).__dict__)}))
predict_shard(manifest_path=tmp / "manifest.tsv", shard=0, shard_size=100, model_paths=[tmp / "m.pt"],
              out_dir=tmp / "out", rows_out=tmp / "rows.tsv", batch_size=8, runtime=Runtime(device="cpu"))
"""


def peak_rss_mib(code: str, *args: str) -> float:
    """Peak RSS of one fresh child process running ``code``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "peak")
        proc = subprocess.run([sys.executable, "-m", "patchcxr.peakmem", out, "code", code, *args])
        if proc.returncode:
            raise RuntimeError(f"benchmark child failed with {proc.returncode}")
        with open(out) as fh:
            return int(fh.read()) / 1024


def main() -> None:
    print(f"machine: {machine()}")
    print(
        f"train_segmentation (FC-DenseNet103, batch 2 at 256², 247 films in memory): {peak_rss_mib(TRAIN):.0f} MiB peak"
    )
    with tempfile.TemporaryDirectory() as tmp:
        print(f"predict_masks (FC-DenseNet103, batch 8 of 4892x4020 films): {peak_rss_mib(PREDICT, tmp):.0f} MiB peak")
    print("goal: every rule under 4096 MiB at default settings")


if __name__ == "__main__":
    main()
