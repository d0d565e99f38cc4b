"""Synthetic copies of the paper's data sources, in each source's original on-disk format.

Every writer reproduces the layout and encoding of the real distribution (method.md §2,
docs/method.md §2.1), so the readers of :mod:`patchcxr.data` meet here exactly what they meet
in a user's download:

==============  =====================================================================
source          what is written
==============  =====================================================================
``jsrt``        ``All247images/JPCNN###.IMG`` and ``JPCLN###.IMG``: headerless 2048×2048
                12-bit big-endian unsigned integers, **inverted** (air bright, bone dark),
                exactly 8,388,608 bytes each
``scr``         ``fold{1,2}/masks/<organ>/<id>.gif`` for ``heart``, ``left lung``,
                ``right lung``, ``left clavicle``, ``right clavicle``: 1024×1024 GIF, 0/255
``montgomery``  ``MontgomerySet/CXR_png/MCUCXR_####_{0,1}.png`` (8-bit grey),
                ``ManualMask/{leftMask,rightMask}/`` (0/255) and ``ClinicalReadings/*.txt``
``shenzhen``    ``ChinaSet_AllFiles/CXR_png/CHNCXR_####_{0,1}.png`` (8-bit palette, as the
                NLM originals), ``ChinaSet_AllFiles/ClinicalReadings/*.txt`` and the
                Kaggle-style lung masks ``mask/CHNCXR_####_#_mask.png``
``kermany``     ``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/`` JPEGs named
                ``IM-####-####.jpeg``, ``NORMAL2-IM-####-####.jpeg``,
                ``person###_bacteria_###.jpeg``, ``person###_virus_###.jpeg`` and the
                CoronaHack ``Chest_xray_Corona_Metadata.csv`` beside it
``cohen``       ``covid-chestxray-dataset/metadata.csv`` (the collection's column schema)
                and ``images/`` (JPEG and PNG)
==============  =====================================================================

Ground truth goes to its own folder (never inside a source tree): ``images.tsv`` (one row
per written image: class, patient, view, planted effect, …), ``lesions.tsv`` (lesion boxes
in pixel coordinates of the written file) and ``labels/<image_id>.png`` (uint8 label map at
the file's resolution: 0 background, 1 heart, 2 left lung, 3 right lung).

All randomness flows from ``numpy.random.default_rng([seed, crc32(stream), index])``, so a
source is reproducible byte for byte and independent of which other sources are made.

This module is the registry (:data:`SOURCES`, :data:`WRITERS`) and the entry point
(:func:`generate_source`); the writers live by family of formats: :mod:`.jsrt` (JSRT, SCR),
:mod:`.nlm` (Montgomery, Shenzhen), :mod:`.kermany` (Kermany, CoronaHack), :mod:`.cohen`, on
:mod:`.exposure` (exposures, artefacts) and :mod:`.common` (random streams, ground truth).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from patchcxr.synthetic.cohen import write_cohen
from patchcxr.synthetic.common import Sink
from patchcxr.synthetic.jsrt import write_jsrt, write_scr
from patchcxr.synthetic.kermany import write_kermany
from patchcxr.synthetic.nlm import write_montgomery, write_shenzhen

SOURCES = ("jsrt", "scr", "montgomery", "shenzhen", "kermany", "cohen")

WRITERS: dict[str, Callable[[Mapping[str, Any], Path, Path], Sink]] = {
    "jsrt": write_jsrt,
    "scr": write_scr,
    "montgomery": write_montgomery,
    "shenzhen": write_shenzhen,
    "kermany": write_kermany,
    "cohen": write_cohen,
}


def generate_source(source: str, params: Mapping[str, Any], out_dir: Path | str, gt_dir: Path | str) -> int:
    """Write one synthetic source in its original format, and its ground truth.

    Args:
        source: one of :data:`SOURCES`.
        params: the validated ``synthetic`` section of the config.
        out_dir: the source's folder (what a user would point ``sources.<name>.path`` to).
        gt_dir: folder of the ground truth (``images.tsv``, ``lesions.tsv``, ``labels/``).

    Returns:
        The number of images (or SCR mask sets) written.
    """
    if source not in WRITERS:
        raise ValueError(f"unknown synthetic source {source!r}; expected one of {', '.join(SOURCES)}")
    sink = WRITERS[source](params, Path(out_dir), Path(gt_dir))
    sink.close(params)
    return len(sink.images)
