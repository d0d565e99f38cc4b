"""Evaluation of the classifiers, one topic a module: :mod:`~patchcxr.evaluation.metrics`
(per-class metrics, AUC, confusion), :mod:`~patchcxr.evaluation.strata` (by source, view,
age, sex, mask source), :mod:`~patchcxr.evaluation.calibration`,
:mod:`~patchcxr.evaluation.comparisons` (paired and pooled model comparisons, seeds) and
:mod:`~patchcxr.evaluation.external` (leave-one-source-out). Every interval and p-value
comes from :mod:`patchcxr.stats`; the saliency checks live with the saliency code
(:mod:`patchcxr.saliency`)."""
