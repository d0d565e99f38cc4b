"""Debian packages some tests need (SLURM, Chromium): installed on demand where the test
runs as root with apt-get, as CI does; elsewhere the test skips and says why."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(packages: list[str], present: list[str]) -> str | None:
    """``None`` when every path in ``present`` exists (installing ``packages`` first if
    needed and possible), else the reason the test must skip."""
    if all(os.path.exists(p) for p in present):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{' '.join(packages)} not installed, and installing needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    for cmd in (["apt-get", "update", "-qq"], install):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            return f"installing {' '.join(packages)} failed: {proc.stderr.strip()[-300:]}"
    missing = [p for p in present if not os.path.exists(p)]
    return f"installed {' '.join(packages)} but {missing} are missing" if missing else None
