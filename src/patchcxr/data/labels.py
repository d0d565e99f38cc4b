"""Label rules: raw findings to the five harmonised classes, and what is excluded.

Classes (data-sources.md, method.md §2.4): ``normal``, ``bacterial``, ``viral``, ``tb``,
``covid19``. The paper trains four (``label4``): viral and COVID-19 merged into
``viral_covid19`` because both share the lung-intensity-variance signature (§7.1).

The rules come from the ``labels:`` section of the configuration, so a user can map a new
finding or stop excluding one without touching code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LABEL5 = ("normal", "bacterial", "viral", "tb", "covid19")
LABEL4 = ("normal", "bacterial", "tb", "viral_covid19")
TO_LABEL4 = {
    "normal": "normal",
    "bacterial": "bacterial",
    "tb": "tb",
    "viral": "viral_covid19",
    "covid19": "viral_covid19",
}


def label4_of(label5: str) -> str:
    """The paper's 4-class label (viral and COVID-19 merged); ``""`` stays ``""``."""
    return TO_LABEL4.get(label5, "")


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
