"""Lung biomarkers and their statistical comparison across classes (method.md §7).

The paper motivates its patch-based design with a statistical analysis of candidate
biomarkers: lung morphology, mean and variance of lung intensity, and the cardiothoracic
ratio (CTR); COVID-19 showed lower mean and (with viral pneumonia) higher variance of lung
intensity, and an intra- versus inter-patch analysis suggested that the *global*
distribution of intensity matters more than local texture. No public code implements it.
One topic a module: :mod:`~patchcxr.biomarkers.features` computes the features of every
image (:class:`~patchcxr.biomarkers.features.FeatureSettings`, the lung geometry and CTR,
the intensity moments, the intra- versus inter-patch analysis, ``shard_features``);
:mod:`~patchcxr.biomarkers.summaries` holds the per-source lung-intensity histograms and
the images of the segmentation example grid; :mod:`~patchcxr.biomarkers.statistics` the
between-class tests (``compare_groups``, ``compare_classes``, the primary Holm family and
the exploratory Benjamini–Hochberg one, ``per_patient``).
"""
