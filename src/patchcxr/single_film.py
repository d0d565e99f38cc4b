"""One film through the whole pipeline, as ``patchcxr predict`` runs it: decoding (PNG, JPEG
or DICOM), the segmenter's preprocessing and lung mask, the classifier's masked input,
K-patch classification with a majority vote, and a probabilistic Grad-CAM map drawn over
the film.

Every step is the workflow's own function, with the settings the model files record
(the segmenter's preprocessing for the mask, the classifier's input settings for its
input: :func:`patchcxr.classification.predict.load_classifier`). The film's source is
unknown, so no source-specific rule applies (format ``""``).

A film whose predicted lung is empty is never refused: it gets the atlas lung field and
``mask_source`` ``atlas`` from :func:`patchcxr.classification.data.lung_input`, the one
statement of the empty-lung policy, which the workflow's inputs use too
(:func:`patchcxr.classification.data.build_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from patchcxr.classification.data import lung_input
from patchcxr.classification.explain import image_saliency
from patchcxr.classification.predict import LoadedClassifier, load_classifier, predict_probs
from patchcxr.data.decode import MAX_PIXELS, decode
from patchcxr.figures import film_saliency_png
from patchcxr.models.classifier import vote as k_vote
from patchcxr.models.state import DEFAULT_RUNTIME, Runtime
from patchcxr.preprocess import PreprocessSettings, preprocess
from patchcxr.segmentation.predict import back_project, load_segmenter, predict_batches

#: the format of a film of unknown source: no source-specific preprocessing rule applies
FORMAT = ""
#: the votes a film's class may come from: the majority of patch votes (the paper) or the
#: mean probability
VOTES = ("hard", "soft")
#: the least long side of a saliency overlay, in pixels
OVERLAY_MIN_SIDE = 1024


def overlay_shape(film: tuple[int, int]) -> tuple[int, int]:
    """(rows, columns) of an overlay of a film of shape ``film``: the film's own, scaled up
    so that its long side is at least :data:`OVERLAY_MIN_SIDE`."""
    scale = max(1.0, OVERLAY_MIN_SIDE / max(film))
    return round(film[0] * scale), round(film[1] * scale)


@dataclass(frozen=True)
class Models:
    """A segmenter and a classifier loaded for prediction, with the run-time they compute
    under (device and precision)."""

    segmenter: nn.Module
    #: the segmenter's input preprocessing, as its file records it
    segmentation: PreprocessSettings
    classifier: LoadedClassifier
    runtime: Runtime

    @property
    def device(self) -> torch.device:
        return self.runtime.torch_device


def load_models(segmenter: Path | str, classifier: Path | str, *, runtime: Runtime = DEFAULT_RUNTIME) -> Models:
    """The segmenter and the classifier of two model files on ``runtime``'s device
    (``weights_only`` loads: a file that is missing, hostile or of another kind raises
    ``OSError``, ``ValueError`` or ``KeyError``)."""
    model, prep, _ = load_segmenter(segmenter, runtime.device)
    clf = load_classifier(classifier, runtime.device)
    return Models(segmenter=model, segmentation=prep, classifier=clf, runtime=runtime)


def segment(models: Models, pixels: np.ndarray) -> np.ndarray:
    """The segmenter's label map of a film, at the film's own size (rows of a cropped blank
    band are background), as the workflow's masks (:func:`patchcxr.segmentation.predict.predict_shard`)."""
    prep = models.segmentation
    x = torch.from_numpy(prep.image(pixels, FORMAT)[None, None])
    small = predict_batches(models.segmenter, x, models.device, 1)[0]
    return back_project(small, pixels.shape[:2], prep.band(pixels, FORMAT))


@dataclass(frozen=True)
class FilmResult:
    """What the pipeline made of one film."""

    #: the classifier's classes, in its order
    classes: list[str]
    #: the class of the film by ``vote``
    decision: str
    vote: str
    #: class probabilities (K, C) of the K patches
    probs: torch.Tensor
    #: patch votes per class
    votes: list[int]
    #: mean patch probability per class
    mean_prob: list[float]
    #: the class the saliency map is of
    saliency_class: str
    #: ``predicted``, or ``atlas`` where the segmentation found no lung (:func:`lung_input`)
    mask_source: str
    #: the classifier's masked input (S, S), uint8, and its lung mask
    input: np.ndarray
    lung: np.ndarray
    #: the probabilistic Grad-CAM map (S, S)
    saliency: np.ndarray
    #: (rows, columns) of the film the classifier saw (after a blank-band crop)
    film_shape: tuple[int, int]
    #: the whole film, preprocessed as the input but not masked (S, S)
    film: np.ndarray

    def probability(self) -> float:
        """The mean patch probability of the film's class."""
        return self.mean_prob[self.classes.index(self.decision)]

    def overlay_png(self) -> bytes:
        """The saliency map over the whole film with the lung contour, a colour bar and the
        class with its probability, as PNG bytes, drawn at the film's geometry and at least
        :data:`OVERLAY_MIN_SIDE` on its long side (the input is often 512² or less)."""
        title = f"{self.decision} (mean patch probability {self.probability():.2f}, {self.vote} vote)"
        if self.saliency_class != self.decision:
            title += f"; saliency of {self.saliency_class}"
        return film_saliency_png(
            self.film.astype(np.float32),
            self.saliency,
            self.lung,
            shape=overlay_shape(self.film_shape),
            title=title,
        )


def triage_film(
    models: Models,
    pixels: np.ndarray,
    *,
    k: int = 100,
    vote: str = "hard",
    target: str | None = None,
    seed: int = 0,
) -> FilmResult:
    """Classify one decoded film by ``k`` lung-centred patches (patch positions drawn from
    ``seed``) and map the saliency of ``target`` (default: the film's class), on the
    models' run-time (its precision: the networks' autocast, fp32, bf16 or fp16)."""
    clf = models.classifier
    names = clf.classes
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {VOTES}, got {vote!r}")
    if target is not None and target not in names:
        raise ValueError(f"{target!r} is not a class of this classifier: {', '.join(names)}")
    img, lung, source = lung_input(pixels, segment(models, pixels), clf.inputs, fmt=FORMAT)
    rows = clf.inputs.preprocessing.kept_rows(pixels, FORMAT)
    tensor = torch.from_numpy(img.astype(np.float32) / 255.0)[None]
    precision = models.runtime.for_inference(clf.trained_precision)
    rng = np.random.default_rng(seed)
    probs, _ = predict_probs(
        clf.model, tensor, lung, clf.settings, k=k, rng=rng, device=models.device, precision=precision
    )
    v = k_vote(probs)
    decision = names[int(v["hard"] if vote == "hard" else v["soft"])]
    saliency_class = target or decision
    # the saliency patches continue the same generator: drawn after the vote's
    sal, _ = image_saliency(
        clf.model,
        tensor,
        lung,
        clf.settings,
        k=k,
        target=names.index(saliency_class),
        rng=rng,
        device=models.device,
        precision=precision,
    )
    return FilmResult(
        classes=list(names),
        decision=decision,
        vote=vote,
        probs=probs,
        votes=[int(c) for c in v["votes"].tolist()],
        mean_prob=[float(p) for p in v["mean_prob"].tolist()],
        saliency_class=saliency_class,
        mask_source=source,
        input=img,
        lung=lung,
        saliency=sal,
        film_shape=(rows, int(pixels.shape[1])),
        film=preprocess(pixels[:rows], FORMAT, gamma=clf.inputs.preprocessing.gamma, size=clf.inputs.size),
    )


def triage_file(
    models: Models,
    path: Path | str,
    *,
    max_pixels: int = MAX_PIXELS,
    k: int = 100,
    vote: str = "hard",
    target: str | None = None,
    seed: int = 0,
) -> FilmResult:
    """:func:`triage_film` of an image file (PNG, JPEG or DICOM); a file that cannot be
    decoded safely, or larger than ``max_pixels``, raises
    :class:`patchcxr.data.decode.DecodeError`."""
    pixels = decode(path, max_pixels=max_pixels).pixels
    return triage_film(models, pixels, k=k, vote=vote, target=target, seed=seed)
