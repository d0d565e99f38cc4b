"""Confound audit (method.md §5.6): does the classifier read the disease or the source?

COVID-19 CXR classifiers are known to learn the hospital, scanner or processing of each
source when each class comes from its own sources (DeGrave, Janizek & Lee, Nat Mach Intell
2021). The paper's cohort is built that way (bacterial and most normal films paediatric
Kermany, TB Montgomery, viral/COVID-19 Cohen). The audit measures both halves of a shortcut:

* **class × source**: how each class is spread over the sources (counts, the share of each
  class from its main source) and Cramér's V of the two; V = 1 when the source alone gives
  the class.
* **source probe**: the same classifier (local patches or global image, same trainer,
  same patient split) trained to predict the *source* from three views of each film — the
  masked lung input (what the classifier sees), the film outside the lung (the mask's
  complement) and the binary lung mask alone (the shape the masked input's border shows).
  Accuracy and balanced accuracy on the test patients with patient-bootstrap intervals,
  against chance (one over the number of sources).

The verdict (:func:`verdict`) has three states, each with its reason:

* **confounded**: some class is tied to its sources — it comes from one source (that
  source's share of the class at least ``purity``: absent, or nearly, from every other
  source), or the *source-only rule*, which gives each film its source's main class,
  recalls the class and is right when it names it, both at least ``purity``
  (:func:`class_source_table`) — and some probe reads the source (a patient-level
  permutation test of its balanced accuracy, Holm across the probes, at ``alpha``);
* **not confounded**: no class is tied to its sources, or every probe is shown not to read
  the source (its balanced-accuracy upper bound below chance + ``equivalence``);
* **inconclusive**: a class is tied, yet no probe reads the source at ``alpha`` and not every
  probe is shown not to (too few test films to tell); or the cohort has one recorded source,
  so there is no source to test (confounds within it are beyond this audit).

Cramér's V of class and source is reported, not used: a class that comes wholly from one
source among mixed ones can leave V low (0.29 in the review's example) while the source
gives that class away.

The package: :mod:`patchcxr.audit.probes` (the probes' views, training, predictions and
scores with their permutation test) and :mod:`patchcxr.audit.verdict` (the class × source
table and its purity gate, each probe's state, the three-state verdict, the summary files
and the whole audit in one call).
"""
