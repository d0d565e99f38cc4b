"""One training harness for every network of the project (segmentation and classifiers).

What it guarantees:

* **Resume after a kill, to the same weights.** After every epoch the full state (model,
  optimiser, scheduler, history, best model so far) is written atomically to a resume file.
  Randomness is re-seeded at the start of each epoch from ``(seed, epoch)`` — batch order,
  augmentation and dropout — so an epoch run after a resume draws exactly what it would
  have drawn in an uninterrupted run, and on one CPU configuration the final weights are
  identical.
* **Model selection on validation only.** The best epoch by ``select_metric`` (higher is
  better) is kept; optional patience stops early.
* **Progress** in the log, one line per epoch (loss, validation score, seconds, ETA), and
  per-epoch metrics to the tracker.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from patchcxr.faults import fault_point
from patchcxr.io import atomic_write_bytes, write_tsv
from patchcxr.models.state import autocast, grad_scaler, load_state, state_to_bytes

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path | str) -> None: ...


def fingerprint(*parts: Any) -> str:
    """A short hash of a training's settings and data identity: a resume state written
    under another fingerprint belongs to another configuration and is ignored."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def progress_path(history: Path | str) -> Path:
    """Where a run's progress plot lies: ``progress.png`` beside its ``history.tsv``."""
    return Path(history).with_name("progress.png")


def eta(spent: Sequence[float], remaining: int) -> str:
    """The time the ``remaining`` epochs should take at the mean pace of those ``spent``
    (``"0 s"`` when none remain; the patience rule may end a run sooner)."""
    if remaining <= 0 or not spent:
        return "0 s"
    seconds = round(sum(spent) / len(spent) * remaining)
    return (
        f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
        if seconds >= 3600
        else (f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s")
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch: a resumed epoch draws what the uninterrupted run drew."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(kw_only=True)
class Trainer:
    """Epoch loop with atomic per-epoch resume state.

    Args:
        model: the network (moved to ``device``).
        optimizer, scheduler: as usual; the scheduler steps once per epoch, or after every
            optimiser step with ``scheduler_per_step``.
        batches: ``batches(epoch)`` yields the epoch's training batches (draw any randomness
            from torch or numpy: both are seeded per epoch).
        loss: ``loss(model, batch)`` → scalar loss.
        validate: ``validate(model)`` → metrics (the model is in eval mode, no grad).
        select_metric: the validation metric that picks the kept epoch.
        minimise: the lower ``select_metric`` the better (a loss); default: the higher.
        epoch_setup: ``epoch_setup(epoch)``, called after ``model.train()`` at the start of
            each epoch (resumed ones too): freezing layers, batch-norm modes.
        epochs: epochs in all.
        seed: base seed.
        resume_path: where the resume state lives; removed after a completed run.
        fingerprint: identifies the configuration; a resume state of another
            configuration is ignored.
        patience: stop after this many epochs without improvement (``None``: never).
        tracker: optional per-epoch metric sink (MLflow).
        precision: ``fp32``, or ``bf16``/``fp16`` autocast for the loss and the validation
            (:func:`patchcxr.models.state.autocast`; fp16 with a loss scaler, whose scale a
            resumed run starts afresh).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batches: Callable[[int], Iterable[Any]]
    loss: Callable[[nn.Module, Any], torch.Tensor]
    validate: Callable[[nn.Module], dict[str, float]]
    select_metric: str
    epochs: int
    seed: int
    resume_path: Path
    fingerprint: str
    patience: int | None = None
    tracker: Tracker | None = None
    precision: str = "fp32"
    scheduler_per_step: bool = False
    minimise: bool = False
    epoch_setup: Callable[[int], None] | None = None

    def _better(self, score: float, best: float) -> bool:
        return score < best if self.minimise else score > best

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _save(self, epoch: int, result: TrainResult) -> None:
        atomic_write_bytes(
            self.resume_path,
            state_to_bytes(
                {
                    "fingerprint": self.fingerprint,
                    "epoch": epoch,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                    "best_epoch": result.best_epoch,
                    "best_score": result.best_score,
                    "best_state": result.best_state,
                    "history": json.dumps(result.history),
                }
            ),
        )

    def _restore(self, result: TrainResult) -> int:
        if not self.resume_path.is_file():
            return 0
        state = load_state(self.resume_path)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring resume state of another configuration: %s", self.resume_path)
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        result.best_epoch, result.best_score = int(state["best_epoch"]), float(state["best_score"])
        result.best_state = state["best_state"]
        result.history = json.loads(state["history"])
        log.info(
            "resuming after epoch %d (best %s %.4f at epoch %d)",
            state["epoch"],
            self.select_metric,
            result.best_score,
            result.best_epoch,
        )
        return int(state["epoch"])

    def fit(self) -> TrainResult:
        result = TrainResult(best_epoch=0, best_score=float("inf") if self.minimise else float("-inf"), epochs_run=0)
        device = self._device()
        scaler = grad_scaler(device, self.precision)
        start = self._restore(result)
        result.epochs_run = start
        spent: list[float] = []  # seconds of the epochs this process ran
        for epoch in range(start + 1, self.epochs + 1):
            t0 = time.perf_counter()
            seed_everything(epoch_seed(self.seed, epoch))
            self.model.train()
            if self.epoch_setup is not None:
                self.epoch_setup(epoch)
            total, n = 0.0, 0
            for batch in self.batches(epoch):
                self.optimizer.zero_grad(set_to_none=True)
                with autocast(device, self.precision):
                    loss = self.loss(self.model, batch)
                if scaler is None:
                    loss.backward()
                    self.optimizer.step()
                else:  # fp16: scaled gradients, steps skipped where they overflowed
                    scaler.scale(loss).backward()
                    scaler.step(self.optimizer)
                    scaler.update()
                if self.scheduler is not None and self.scheduler_per_step:
                    self.scheduler.step()
                total += float(loss.detach())
                n += 1
                fault_point(f"step:{epoch}:{n}", self.resume_path)
            if self.scheduler is not None and not self.scheduler_per_step:
                self.scheduler.step()
            self.model.eval()
            with torch.no_grad(), autocast(device, self.precision):
                metrics = self.validate(self.model)
            row = {
                "epoch": epoch,
                "train_loss": total / max(n, 1),
                **metrics,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
            }
            result.history.append(row)
            score = float(metrics[self.select_metric])
            if self._better(score, result.best_score):
                result.best_score, result.best_epoch = score, epoch
                result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            if self.tracker is not None:
                self.tracker.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)
            spent.append(row["seconds"])
            log.info(
                "epoch %d/%d: loss %.4f, %s %.4f (best %.4f at %d), %.1f s, ETA %s",
                epoch,
                self.epochs,
                row["train_loss"],
                self.select_metric,
                score,
                result.best_score,
                result.best_epoch,
                row["seconds"],
                eta(spent, self.epochs - epoch),
            )
            self._save(epoch, result)
            fault_point(f"epoch:{epoch}", self.resume_path)
            result.epochs_run = epoch
            if self.patience is not None and epoch - result.best_epoch >= self.patience:
                log.info("no improvement for %d epochs: stopping at epoch %d", self.patience, epoch)
                break
        return result


@dataclass(frozen=True, kw_only=True)
class TrainingFiles:
    """Where a training writes: the model file, its metadata (JSON), the per-epoch history
    (TSV) and the resume folder (``state.pt`` and the tracking run id while it runs)."""

    model: Path | str
    metadata: Path | str
    history: Path | str
    resume_dir: Path | str


@dataclass(frozen=True, kw_only=True)
class TrainingRun:
    """Everything around one network's epoch loop that is the same for every network:
    identity (fingerprint), resume folder, tracking run, metadata and the files written.

    Args:
        name: the tracking run's name (``segmentation-…``, ``classifier-…``).
        settings: every setting the network was trained with; recorded in the metadata, the
            tracking parameters and the fingerprint.
        data: what identifies the training data (counts, pixel sums) for the fingerprint.
        inputs: named input files whose sha256 go into the metadata.
        counts: ``n_train``, ``n_val`` and the like, for the metadata and the tracker.
        files: where to write.
        tracking: the ``tracking`` configuration (``None``: off).
    """

    name: str
    settings: Mapping[str, Any]
    data: tuple[Any, ...]
    inputs: Mapping[str, Path | str]
    counts: Mapping[str, int]
    files: TrainingFiles
    tracking: Mapping[str, Any] | None = None

    def fit(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        batches: Callable[[int], Iterable[Any]],
        loss: Callable[[nn.Module, Any], torch.Tensor],
        validate: Callable[[nn.Module], dict[str, float]],
        select_metric: str,
        epochs: int,
        seed: int,
        patience: int | None,
        device: torch.device,
        model_file: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        precision: str = "fp32",
        scheduler_per_step: bool = False,
        minimise: bool = False,
        epoch_setup: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Run the epoch loop (:class:`Trainer`) under a tracking run, then write the best
        epoch's weights with ``model_file`` (the settings a loader needs), the metadata
        (``best_<select_metric>``, epochs, counts, device and ``metadata``) and the
        history; remove the resume state. Returns the metadata written."""
        from patchcxr.tracking import artefact_metadata, mlflow_run

        resume = Path(self.files.resume_dir)
        resume.mkdir(parents=True, exist_ok=True)
        params = {**self.settings, **self.counts, "device": str(device)}
        with mlflow_run(self.tracking or {"enabled": False}, self.name, params, resume / "mlflow_run_id") as tracker:
            result = Trainer(
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                batches=batches,
                loss=loss,
                validate=validate,
                select_metric=select_metric,
                epochs=epochs,
                seed=seed,
                resume_path=resume / "state.pt",
                # a run resumed at another precision is another run (fp32: as before)
                fingerprint=fingerprint(self.settings, *self.data, *([precision] if precision != "fp32" else [])),
                patience=patience,
                tracker=tracker,
                precision=precision,
                scheduler_per_step=scheduler_per_step,
                minimise=minimise,
                epoch_setup=epoch_setup,
            ).fit()
            written = artefact_metadata(
                self.settings,
                self.inputs,
                best_epoch=result.best_epoch,
                **{f"best_{select_metric}": result.best_score},
                epochs_run=result.epochs_run,
                **self.counts,
                device=str(device),
                precision=precision,
                **(metadata or {}),
            )
            # the precision it trained in travels with the weights (auto resolved: fp32, bf16, fp16)
            self._save(result, {**model_file, "precision": precision}, written, tracker, select_metric)
        log.info("%s: best epoch %d, %s %.4f", self.name, result.best_epoch, select_metric, result.best_score)
        return written

    def _save(
        self,
        result: TrainResult,
        model_file: Mapping[str, Any],
        metadata: Mapping[str, Any],
        tracker: Any,
        select_metric: str,
    ) -> None:
        from patchcxr.tracking import write_metadata

        files = self.files
        from patchcxr.figures import plot_progress

        atomic_write_bytes(files.model, state_to_bytes({**model_file, "state_dict": result.best_state}))
        write_tsv(files.history, pd.DataFrame(result.history))
        plot_progress(files.history, progress_path(files.history), select_metric=select_metric, title=self.name)
        write_metadata(files.metadata, metadata)
        if tracker is not None:
            for path in (files.model, files.metadata, files.history):
                tracker.log_artifact(path)
        for leftover in ("state.pt", "mlflow_run_id"):
            (Path(files.resume_dir) / leftover).unlink(missing_ok=True)
