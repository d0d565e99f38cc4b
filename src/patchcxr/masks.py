"""Which lung mask an image's later stages use (classifier inputs, biomarkers), and the
fallback when the segmentation finds no lung.

By default every image uses its *predicted* mask, as the paper did: ground-truth masks
exist for some sources only (JSRT/SCR, Montgomery, Shenzhen), and those sources carry some
classes only, so mixing smooth hand tracings with predicted masks would tie the mask's look
to the class — a shortcut. ``truth_where_available`` is kept as a sensitivity option.

An image whose predicted lung is empty (segmentation fails most on opaque lungs) still gets
an input: the lung field of a fixed atlas (two ellipses where lungs lie on a PA film),
flagged ``atlas`` in ``mask_source`` and counted in the evaluation — never dropped.
"""

from __future__ import annotations

import numpy as np

from patchcxr.data.labels import LabelValue

#: ``classification.mask_source`` values
MASK_SOURCES = ("predicted", "truth_where_available")
#: what a row's ``mask_source`` may say
TRUTH, PREDICTED, ATLAS = "truth", "predicted", "atlas"


def choose_mask(has_truth: bool, truth_path: str, predicted_path: str, mask_source: str) -> tuple[str, str]:
    """(path, kind) of the label map to use: the predicted one, or with
    ``truth_where_available`` the ground truth when the source has one."""
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    if mask_source == "truth_where_available" and has_truth and truth_path:
        return truth_path, TRUTH
    return predicted_path, PREDICTED


def largest_component(mask: np.ndarray, *, diagonal: bool = False) -> np.ndarray:
    """The largest connected component of a boolean ``mask`` (empty stays empty); pixels
    touching at a corner are connected when ``diagonal``. The one place this is written:
    mask clean-up and the cardiothoracic ratio use it."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(2, 2 if diagonal else 1)
    comp, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask.astype(bool)
    return comp == 1 + int(np.argmax(np.bincount(comp.ravel())[1:]))


def atlas_labels(shape: tuple[int, int]) -> np.ndarray:
    """A label map of the atlas lung field at ``shape``: the image's right lung (the
    patient's right) on the left half, each an ellipse over rows 15–80 % and a lateral band
    of the chest; no heart."""
    h, w = shape
    rows, cols = np.ogrid[:h, :w]
    out = np.zeros(shape, np.uint8)
    for centre, value in ((0.30, LabelValue.RIGHT_LUNG), (0.70, LabelValue.LEFT_LUNG)):
        inside = ((rows / h - 0.475) / 0.325) ** 2 + ((cols / w - centre) / 0.16) ** 2 <= 1.0
        out[inside] = value
    return out
