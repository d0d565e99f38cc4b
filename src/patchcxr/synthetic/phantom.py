"""CXR-like phantoms with known anatomy, lesions and planted biomarker effects.

A phantom is described by a :class:`PhantomSpec` (drawn once per image from a seeded
generator) and rendered by :func:`render` at any resolution. All shapes are analytic
functions of normalised image coordinates ``u = (x + 0.5) / W`` and ``v = (y + 0.5) / H``,
so the label map of a rendering is exact at that resolution and the same spec rendered at
two resolutions describes the same anatomy (SCR stores its masks at half the JSRT size).

Orientation follows radiological convention (image as if facing the patient): the
patient's **right** lung lies on the image's **left**. Labels follow the paper's
segmentation classes (method.md §4: BG, heart, left lung, right lung):

====  ===========================================
 0    background (everything else)
 1    heart
 2    left lung (patient's left, image right)
 3    right lung (patient's right, image left)
====  ===========================================

The rendered quantity is an *attenuation-like density* ``D`` in [0, 1] (bone bright, air
dark). Inside the lungs the parenchyma is

.. math::

    D_\\text{lung}(p) = d_0 + \\Delta\\mu + s_\\sigma \\, \\tau \\, n(p) + h(p) + \\sum_j \\ell_j(p)

with base density ``d_0``, the planted mean shift ``Δμ`` (``lung_mean_shift``), the planted
texture scale ``s_σ`` (``lung_std_scale``) applied to a unit-variance smooth noise field
``n`` of amplitude ``τ``, a perihilar vascular term ``h`` and the class lesions ``ℓ_j``
(lobar consolidation, peripheral ground glass, upper-zone nodules and cavities). The
planted effects therefore move the mean and the standard deviation of lung intensity,
the two biomarkers the paper reports (method.md §7.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from patchcxr.data.labels import LabelValue


@dataclass(frozen=True)
class Effect:
    """A planted biomarker effect for one class (method.md §7.1).

    Attributes:
        lung_mean_shift: added to the lung parenchyma density (negative = darker lungs).
        lung_std_scale: multiplies the amplitude of the lung texture (>1 = more variance).
    """

    lung_mean_shift: float = 0.0
    lung_std_scale: float = 1.0


@dataclass(frozen=True)
class Lesion:
    """One planted lesion, in normalised coordinates of the anatomy frame."""

    kind: str  # "consolidation" | "ground_glass" | "nodule" | "cavity"
    u: float
    v: float
    radius_u: float
    radius_v: float
    amplitude: float
    side: str  # "left" | "right" (patient side)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything needed to render one image deterministically.

    Attributes:
        label: one of :data:`patchcxr.data.labels.LABEL5`, or ``"nodule"`` for JSRT nodule cases, or
            ``"lateral"`` for a lateral view (rendered without lung labels).
        seed: seed of the texture noise drawn at render time.
        scale: isotropic scale of the anatomy (1 = adult reference).
        shift_u, shift_v: translation of the anatomy, in image fractions.
        rotation_deg: in-plane rotation of the anatomy.
        heart_scale: relative heart size (drives the cardiothoracic ratio).
        lung_width_scale, lung_height_scale: relative lung size.
        effect: the planted biomarker effect of this image's class.
        lesions: planted lesions.
        paediatric: child anatomy (rounder thorax, relatively larger heart).
    """

    label: str
    seed: int
    scale: float = 1.0
    shift_u: float = 0.0
    shift_v: float = 0.0
    rotation_deg: float = 0.0
    heart_scale: float = 1.0
    lung_width_scale: float = 1.0
    lung_height_scale: float = 1.0
    effect: Effect = field(default_factory=Effect)
    lesions: tuple[Lesion, ...] = ()
    paediatric: bool = False


@dataclass
class Rendering:
    """A rendered phantom.

    Attributes:
        density: float32 (H, W) in [0, 1], bone bright.
        labels: uint8 (H, W) label map (see module docstring).
        clavicles: bool (2, H, W): patient's left and right clavicle.
        lesion_boxes: one ``(kind, side, x0, y0, x1, y1)`` per lesion, pixel coordinates,
            end-exclusive, clipped to the image.
    """

    density: np.ndarray
    labels: np.ndarray
    clavicles: np.ndarray
    lesion_boxes: list[tuple[str, str, int, int, int, int]]


# --------------------------------------------------------------------------- anatomy
# Reference anatomy in normalised coordinates (adult PA film). The right lung (image left)
# is slightly larger than the left one, whose medial part is taken by the heart.
_LUNGS = {
    # side: (centre u, centre v, radius u, radius v)
    "right": (0.305, 0.470, 0.158, 0.315),
    "left": (0.695, 0.480, 0.150, 0.320),
}
_HEART = (0.555, 0.625, 0.140, 0.112, np.deg2rad(-18.0))  # cu, cv, ru, rv, angle


def sample_spec(
    rng: np.random.Generator,
    label: str,
    effect: Effect | None = None,
    paediatric: bool = False,
    *,
    base: PhantomSpec | None = None,
) -> PhantomSpec:
    """Draw a phantom description for one image.

    Args:
        rng: the image's own generator (seeded by the caller).
        label: class of the image (see :class:`PhantomSpec`).
        effect: planted effect for the class; none by default.
        paediatric: child anatomy.
        base: another image of the same patient; its anatomy is reused with small
            positioning changes, so follow-up films of one patient look alike.
    """
    if base is not None:
        scale, heart, lw, lh = base.scale, base.heart_scale, base.lung_width_scale, base.lung_height_scale
    else:
        scale = float(rng.uniform(0.92, 1.04))
        heart = float(rng.uniform(0.88, 1.22)) * (1.12 if paediatric else 1.0)
        lw = float(rng.uniform(0.92, 1.06))
        lh = float(rng.uniform(0.90, 1.05)) * (0.92 if paediatric else 1.0)
    spec_lesions = tuple(_sample_lesions(rng, label))
    return PhantomSpec(
        label=label,
        seed=int(rng.integers(0, 2**31 - 1)),
        scale=scale,
        shift_u=float(rng.uniform(-0.025, 0.025)),
        shift_v=float(rng.uniform(-0.025, 0.02)),
        rotation_deg=float(rng.uniform(-3.0, 3.0)),
        heart_scale=heart,
        lung_width_scale=lw,
        lung_height_scale=lh,
        effect=effect or Effect(),
        lesions=spec_lesions,
        paediatric=paediatric,
    )


def _point_in_lung(
    rng: np.random.Generator, side: str, zone: tuple[float, float], lateral: tuple[float, float]
) -> tuple[float, float]:
    """A point of the reference lung ``side``; ``zone`` is a range of relative height
    (0 apex, 1 base) and ``lateral`` a range of relative distance from the medial edge
    (0 medial, 1 lateral)."""
    cu, cv, ru, rv = _LUNGS[side]
    t = rng.uniform(*zone)
    v = cv - 0.8 * rv + t * 1.5 * rv
    half = ru * np.sqrt(max(0.05, 1.0 - ((v - cv) / rv) ** 2))
    lat = rng.uniform(*lateral)
    # lateral direction is -u for the right lung (image left), +u for the left lung
    sign = -1.0 if side == "right" else 1.0
    u = cu + sign * (-0.55 + 1.3 * lat) * half * 0.8
    return float(u), float(v)


def _sample_lesions(rng: np.random.Generator, label: str) -> list[Lesion]:
    """Class-specific lung patterns (radiological descriptions in method.md §7.1)."""
    out: list[Lesion] = []
    if label == "bacterial":
        # lobar consolidation: one large dense homogeneous opacity, usually lower/middle zone
        side = str(rng.choice(["left", "right"]))
        u, v = _point_in_lung(rng, side, (0.45, 0.8), (0.3, 0.7))
        out.append(
            Lesion(
                "consolidation",
                u,
                v,
                float(rng.uniform(0.06, 0.09)),
                float(rng.uniform(0.07, 0.11)),
                float(rng.uniform(0.28, 0.38)),
                side,
            )
        )
    elif label in ("viral", "covid19"):
        # bilateral, peripheral, multifocal ground glass; COVID-19 more numerous and lower
        n = int(rng.integers(5, 9)) if label == "covid19" else int(rng.integers(3, 6))
        zone = (0.35, 0.95) if label == "covid19" else (0.2, 0.8)
        lateral = (0.65, 1.0) if label == "covid19" else (0.4, 0.9)
        for i in range(n):
            side = "left" if i % 2 == 0 else "right"  # bilateral by construction
            u, v = _point_in_lung(rng, side, zone, lateral)
            r = float(rng.uniform(0.03, 0.055))
            out.append(
                Lesion("ground_glass", u, v, r, r * float(rng.uniform(0.9, 1.3)), float(rng.uniform(0.09, 0.14)), side)
            )
    elif label == "tb":
        # upper-zone nodules and cavities
        for _ in range(int(rng.integers(5, 12))):
            side = str(rng.choice(["left", "right"], p=[0.4, 0.6]))
            u, v = _point_in_lung(rng, side, (0.02, 0.4), (0.1, 0.9))
            r = float(rng.uniform(0.006, 0.013))
            out.append(Lesion("nodule", u, v, r, r, float(rng.uniform(0.2, 0.3)), side))
        for _ in range(int(rng.integers(1, 3))):
            side = str(rng.choice(["left", "right"]))
            u, v = _point_in_lung(rng, side, (0.08, 0.35), (0.3, 0.8))
            r = float(rng.uniform(0.022, 0.035))
            out.append(Lesion("cavity", u, v, r, r, float(rng.uniform(0.22, 0.3)), side))
    elif label == "nodule":
        side = str(rng.choice(["left", "right"]))
        u, v = _point_in_lung(rng, side, (0.15, 0.85), (0.1, 0.9))
        r = float(rng.uniform(0.01, 0.02))
        out.append(Lesion("nodule", u, v, r, r, float(rng.uniform(0.12, 0.22)), side))
    return out


# --------------------------------------------------------------------------- rendering
def _grid(height: int, width: int, spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy-frame coordinates of every pixel centre (inverse of the patient pose)."""
    u = (np.arange(width, dtype=np.float32) + 0.5) / width
    v = (np.arange(height, dtype=np.float32) + 0.5) / height
    uu, vv = np.meshgrid(u, v)
    theta = np.deg2rad(spec.rotation_deg)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    du = uu - 0.5 - spec.shift_u
    dv = vv - 0.5 - spec.shift_v
    au = (c * du + s * dv) / spec.scale + 0.5
    av = (-s * du + c * dv) / spec.scale + 0.5
    return au.astype(np.float32), av.astype(np.float32)


def _lung_region(au: np.ndarray, av: np.ndarray, side: str, spec: PhantomSpec) -> np.ndarray:
    """Boolean lung field: an ellipse tapered to an apex and cut by a domed diaphragm."""
    cu, cv, ru, rv = _LUNGS[side]
    ru *= spec.lung_width_scale * (1.06 if spec.paediatric else 1.0)
    rv *= spec.lung_height_scale
    top = cv - rv
    # taper towards the apex: the half-width grows with depth below the apex
    depth = np.clip((av - top) / (1.2 * rv), 0.0, 1.0)
    ru_eff = ru * (0.45 + 0.55 * np.sqrt(depth))
    inside = ((au - cu) / ru_eff) ** 2 + ((av - cv) / rv) ** 2 <= 1.0
    # diaphragm: dome highest near the lung's centre, costophrenic angle deeper laterally
    x = (au - cu) / ru
    dome = cv + 0.80 * rv - 0.09 * rv * np.clip(1.0 - x**2, 0.0, 1.0)
    return inside & (av <= dome)


def _heart_region(au: np.ndarray, av: np.ndarray, spec: PhantomSpec) -> np.ndarray:
    cu, cv, ru, rv, ang = _HEART
    ru *= spec.heart_scale
    rv *= spec.heart_scale
    du, dv = au - cu, av - cv
    c, s = np.cos(ang), np.sin(ang)
    x = (c * du + s * dv) / ru
    y = (-s * du + c * dv) / rv
    return x**2 + y**2 <= 1.0


def _clavicle(au: np.ndarray, av: np.ndarray, side: str) -> np.ndarray:
    """A slightly S-shaped bony band from the sternal notch towards the shoulder."""
    sign = -1.0 if side == "right" else 1.0
    t = sign * (au - 0.5)  # distance from the midline towards this side
    centre_v = 0.175 - 0.16 * (t - 0.05) + 0.25 * (t - 0.2) ** 2
    return (t > 0.035) & (t < 0.30) & (np.abs(av - centre_v) < 0.0115)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Unit-variance smooth noise: white noise on a coarse grid, interpolated up.

    Drawing on a coarse grid keeps the cost independent of the output size (a 2048² JSRT
    film costs the same noise draws as a 256² demo image).
    """
    ch = max(4, round(cells * height / max(height, width)))
    cw = max(4, round(cells * width / max(height, width)))
    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)).astype(np.float32), 1.0, mode="wrap")
    fine = ndimage.zoom(coarse, (height / ch, width / cw), order=3, mode="grid-wrap", grid_mode=True)
    fine = fine[:height, :width]
    std = float(fine.std()) or 1.0
    return ((fine - fine.mean()) / std).astype(np.float32)


def _lesion_field(au: np.ndarray, av: np.ndarray, lesion: Lesion) -> np.ndarray:
    du = (au - lesion.u) / lesion.radius_u
    dv = (av - lesion.v) / lesion.radius_v
    d2 = du**2 + dv**2
    if lesion.kind == "consolidation":
        # homogeneous with a soft edge (logistic in the normalised radius)
        return lesion.amplitude / (1.0 + np.exp(np.clip((np.sqrt(d2) - 1.0) * 9.0, -50.0, 50.0)))
    if lesion.kind == "cavity":
        # thick bright wall, air-filled (dark) centre
        r = np.sqrt(d2)
        wall = np.exp(-((r - 0.75) ** 2) / (2 * 0.18**2))
        return lesion.amplitude * wall - 0.6 * lesion.amplitude * np.exp(-d2 / (2 * 0.35**2))
    # ground glass and nodules: Gaussian profiles (faint and wide vs. dense and small)
    return lesion.amplitude * np.exp(-d2 / 2.0)


def render(spec: PhantomSpec, height: int, width: int, blur: bool = True) -> Rendering:
    """Render ``spec`` at ``height × width``.

    Args:
        spec: the phantom description.
        height, width: output size in pixels.
        blur: apply the detector blur (a Gaussian of 0.06 % of the image size); masks
            are never blurred.

    Returns:
        The rendering; ``labels`` is exact at this resolution.
    """
    rng = np.random.default_rng(spec.seed)
    au, av = _grid(height, width, spec)
    labels = np.zeros((height, width), np.uint8)
    clav = np.zeros((2, height, width), bool)

    # body outline: a wide superellipse for the trunk plus the neck
    body = (np.abs((au - 0.5) / 0.47) ** 4 + np.abs((av - 0.64) / 0.60) ** 2 <= 1.0) | (
        (np.abs(au - 0.5) < 0.085) & (av < 0.12)
    )
    # soft tissue thicker towards the centre and the abdomen
    d = np.where(
        body, 0.46 + 0.10 * np.clip(1.0 - np.abs(au - 0.5) / 0.47, 0, 1) + 0.10 * np.clip(av - 0.75, 0, 1), 0.04
    )

    if spec.label == "lateral":
        # lateral film: one lung field over the thorax, spine behind it; no PA labels
        field_ = ((au - 0.48) / 0.24) ** 2 + ((av - 0.48) / 0.30) ** 2 <= 1.0
        d = np.where(field_, 0.26, d)
        d = d + 0.18 * ((au > 0.68) & (au < 0.76) & body)
        d = d + 0.03 * _smooth_noise(rng, height, width, 48) * field_
    else:
        right = _lung_region(au, av, "right", spec)
        left = _lung_region(au, av, "left", spec)
        heart = _heart_region(au, av, spec)
        lungs = (right | left) & ~heart
        labels[right & ~heart] = LabelValue.RIGHT_LUNG
        labels[left & ~heart] = LabelValue.LEFT_LUNG
        labels[heart] = LabelValue.HEART
        clav[0] = _clavicle(au, av, "left")
        clav[1] = _clavicle(au, av, "right")

        # mediastinum and heart are dense soft tissue
        mediast = (np.abs(au - 0.5) < 0.06) & (av > 0.12) & (av < 0.85)
        d = np.where(mediast | heart, 0.70, d)

        # lung parenchyma: base density + planted shift + scaled texture + hilar vessels
        eff = spec.effect
        tex = (
            0.030
            * eff.lung_std_scale
            * (0.75 * _smooth_noise(rng, height, width, 64) + 0.45 * _smooth_noise(rng, height, width, 160))
        )
        hila = sum(np.exp(-(((au - hu) / 0.09) ** 2 + ((av - 0.47) / 0.12) ** 2)) for hu in (0.40, 0.60))
        parenchyma = 0.20 + eff.lung_mean_shift + tex + 0.07 * hila
        for lesion in spec.lesions:
            parenchyma = parenchyma + _lesion_field(au, av, lesion)
        d = np.where(lungs, parenchyma, d)

        # bones: posterior ribs as periodic curved bands, spine, clavicles
        for lo, hi in ((0.08, 0.47), (0.53, 0.92)):  # right and left hemithorax
            t = np.abs(au - 0.5)
            phase = (av - 0.19 - 0.55 * (t - 0.05) ** 2) / 0.068
            frac = phase - np.floor(phase)
            ribs = (phase > 0) & (phase < 9) & (au > lo) & (au < hi) & body
            d = d + 0.09 * ribs * np.exp(-((frac - 0.22) ** 2) / (2 * 0.09**2))
        spine = (np.abs(au - 0.5) < 0.032) & body
        d = d + 0.12 * spine * (0.8 + 0.2 * np.cos(2 * np.pi * av / 0.045))
        d = d + 0.22 * (clav[0] | clav[1])

    if blur:
        d = ndimage.gaussian_filter(d.astype(np.float32), sigma=max(0.5, 0.0006 * max(height, width)))
    density = np.clip(d, 0.0, 1.0).astype(np.float32)
    return Rendering(density, labels, clav, _lesion_boxes(spec, height, width))


def _lesion_boxes(spec: PhantomSpec, height: int, width: int) -> list[tuple[str, str, int, int, int, int]]:
    """Pixel boxes of the lesions: ±2 radii around the centre, mapped through the pose."""
    theta = np.deg2rad(spec.rotation_deg)
    c, s = np.cos(theta), np.sin(theta)
    boxes = []
    for les in spec.lesions:
        reach = 2.0 if les.kind in ("ground_glass", "nodule") else 1.3
        corners = []
        for du in (-reach * les.radius_u, reach * les.radius_u):
            for dv in (-reach * les.radius_v, reach * les.radius_v):
                au, av = les.u + du - 0.5, les.v + dv - 0.5
                # forward pose: image = R^-1 (scale * anatomy) + shift
                x = (c * au - s * av) * spec.scale + 0.5 + spec.shift_u
                y = (s * au + c * av) * spec.scale + 0.5 + spec.shift_v
                corners.append((x * width, y * height))
        xs, ys = zip(*corners, strict=True)
        x0, x1 = int(np.clip(np.floor(min(xs)), 0, width)), int(np.clip(np.ceil(max(xs)), 0, width))
        y0, y1 = int(np.clip(np.floor(min(ys)), 0, height)), int(np.clip(np.ceil(max(ys)), 0, height))
        boxes.append((les.kind, les.side, x0, y0, x1, y1))
    return boxes
