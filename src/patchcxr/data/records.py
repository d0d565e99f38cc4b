"""What the source readers find, and the helpers they share: one :class:`ImageRecord` per
image, a :class:`QuarantineRow` for every file or metadata row left out and why, both
gathered in a :class:`SourceIndex`; :class:`SourceLayoutError` for a folder that does not
hold its format's layout; and the small helpers every reader uses (file listing, age and
sex parsing, the view and paediatric rules, the check that a path stays inside its source
folder). The readers themselves live in :mod:`patchcxr.data.readers` (the dispatch,
``read_source``) and the per-format modules it imports."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from patchcxr.data.labels import LabelRules

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")


@dataclass
class ImageRecord:
    """One image found in a source, before decoding.

    ``masks`` maps a role to a mask file: ``left``/``right`` (one lung each), ``lungs``
    (both lungs in one file) and ``heart``.
    """

    source: str
    format: str
    stem: str
    source_path: Path
    patient_id: str = ""
    view: str = "PA"
    sex: str = ""
    age: float | None = None
    paediatric: bool = False
    finding_raw: str = ""
    label5: str = ""
    license: str = ""
    masks: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class QuarantineRow:
    """A file (or metadata row) left out, and why."""

    file: str
    source: str
    reason: str


@dataclass
class SourceIndex:
    records: list[ImageRecord] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)

    def skip(self, source: str, file: Path | str, reason: str) -> None:
        self.quarantine.append(QuarantineRow(printable(str(file)), source, reason))


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) escaped as ``\\xNN``:
    one table row per file, whatever its name."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)


def outside(path: Path, roots: Sequence[Path]) -> Path | None:
    """Where ``path`` really leads (symlinks and ``..`` resolved) when that is outside every
    folder of ``roots`` (resolved already: they are resolved once per source), else ``None``."""
    real = path.resolve()
    return None if any(real == root or root in real.parents for root in roots) else real


def leaves_source(escaped: Path) -> str:
    """The quarantine reason of a metadata path that leads out of its source folder."""
    return f"metadata path leads outside the source folder (to {escaped}): not opened"


class SourceLayoutError(FileNotFoundError):
    """The source folder does not hold the layout its format expects."""


def source_files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file() and not p.name.startswith("."))


def age_years(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)", str(text))
    return float(m.group(1)) if m else None


def sex_code(text: str) -> str:
    t = str(text).strip().upper()
    return {"MALE": "M", "FEMALE": "F", "M": "M", "F": "F", "O": "O"}.get(t, "")


def keeps_view(index: SourceIndex, rec: ImageRecord, rules: LabelRules) -> bool:
    if rules.view_excluded(rec.view):
        index.skip(rec.source, rec.source_path, f"excluded view {rec.view!r} (labels.exclude_views)")
        return False
    return True


def paediatric_flag(age: float | None, rules: LabelRules) -> bool:
    return age is not None and age < rules.paediatric_age
