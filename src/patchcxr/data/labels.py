"""The project's labels, defined once: the classes, the label-map values, and the rules
from raw findings to the five harmonised classes.

Classes (method.md §2.4): ``normal``, ``bacterial``, ``viral``, ``tb``, ``covid19``. The
paper trains four (``label4``): viral and COVID-19 merged into ``viral_covid19`` because
both share the lung-intensity-variance signature (§7.1). Every other module (the workflow
included) imports the names from here.

Label maps (ground-truth and predicted masks) hold :class:`LabelValue` values.

The rules come from the ``labels:`` section of the configuration, so a user can map a new
finding or stop excluding one without touching code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

#: the five harmonised classes (this order is also the synthetic generator's draw order)
LABEL5 = ("normal", "bacterial", "viral", "tb", "covid19")
#: the paper's four training classes, in the order of the classifier's outputs
LABEL4 = ("normal", "bacterial", "tb", "viral_covid19")
TO_LABEL4 = {
    "normal": "normal",
    "bacterial": "bacterial",
    "tb": "tb",
    "viral": "viral_covid19",
    "covid19": "viral_covid19",
}
#: the five classes in the order of the four (each merged class expanded in place): the
#: classifier's output order with ``labels: label5`` and the order of tables and figures
LABEL5_BY_LABEL4 = tuple(c for c4 in LABEL4 for c in LABEL5 if TO_LABEL4[c] == c4)
#: every class name a table can hold, in display order
DISPLAY_ORDER = (*LABEL5_BY_LABEL4, "viral_covid19")
#: the label columns of the manifest, cohort and inputs tables
LABEL_SCHEMES = ("label4", "label5")


def label4_of(label5: str) -> str:
    """The paper's 4-class label (viral and COVID-19 merged); ``""`` stays ``""``."""
    return TO_LABEL4.get(label5, "")


def class_names(labels: str) -> tuple[str, ...]:
    """The classifier's output classes, in order, for the label scheme ``labels``."""
    if labels == "label4":
        return LABEL4
    if labels == "label5":
        return LABEL5_BY_LABEL4
    raise ValueError(f"labels must be one of {LABEL_SCHEMES}, got {labels!r}")


class LabelValue(IntEnum):
    """Values of a label map (masks: ground truth, SCR, predicted)."""

    BACKGROUND = 0
    HEART = 1
    LEFT_LUNG = 2
    RIGHT_LUNG = 3


#: the lung values of a label map
LUNG_VALUES = (int(LabelValue.LEFT_LUNG), int(LabelValue.RIGHT_LUNG))
#: number of label-map values (the segmentation network's outputs)
N_LABEL_VALUES = len(LabelValue)


@dataclass(frozen=True)
class LabelRules:
    """Mapping and exclusion rules (config ``labels:``).

    Attributes:
        findings: raw finding (case-insensitive; for hierarchical findings such as
            ``Pneumonia/Viral/COVID-19`` the last component is tried first) to a label5.
        exclude_findings: findings kept unlabelled (``label5 = ""``): left out of the
            ``all`` cohort, available to cohorts that bring their own labels.
        exclude_views: view codes left out (lateral films by default).
        paediatric_age: ages below this are paediatric.
    """

    findings: Mapping[str, str] = field(default_factory=dict)
    exclude_findings: Sequence[str] = ()
    exclude_views: Sequence[str] = ("L", "LL", "RL", "LATERAL")
    paediatric_age: float = 18.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LabelRules:
        return cls(
            findings={str(k).lower(): str(v) for k, v in cfg.get("findings", {}).items()},
            exclude_findings=tuple(str(f).lower() for f in cfg.get("exclude_findings", ())),
            exclude_views=tuple(str(v).upper() for v in cfg.get("exclude_views", cls.exclude_views)),
            paediatric_age=float(cfg.get("paediatric_age", 18.0)),
        )

    def classify(self, finding: str) -> tuple[str, str | None]:
        """Return ``(label5, unknown)``.

        A mapped finding gives its class; an excluded finding gives ``""`` (the image stays
        in the manifest, unlabelled, so that a cohort such as ``oh2020`` can still label it
        its own way); an unmapped finding gives ``""`` and the reason, and the image goes
        to quarantine.
        """
        raw = finding.strip()
        key = raw.lower()
        candidates = [key, key.rsplit("/", 1)[-1].strip()] if "/" in key else [key]
        if any(c in self.exclude_findings for c in candidates):
            return "", None
        for cand in candidates:
            if cand in self.findings:
                return self.findings[cand], None
        return "", f"unknown label {raw!r}: add it to labels.findings or labels.exclude_findings"

    def view_excluded(self, view: str) -> bool:
        return view.strip().upper() in self.exclude_views
