"""What the source readers find, and the helpers they share: one :class:`ImageRecord` per
image, a :class:`QuarantineRow` for every file or metadata row left out and why, both
gathered in a :class:`SourceIndex`; :class:`SourceLayoutError` for a folder that does not
hold its format's layout; and the small helpers every reader uses (file listing, age and
sex parsing, the view and paediatric rules, the check that a path stays inside its source
folder). The readers themselves live in :mod:`patchcxr.data.readers` (the dispatch,
``read_source``) and the per-format modules it imports."""

from __future__ import annotations

import re
from collections import Counter
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
    notes: list[str] = field(default_factory=list)
    row: str = ""  # the metadata table whose row made the record ("" when none did)


@dataclass(frozen=True)
class QuarantineRow:
    """A file (or metadata row) left out, and why."""

    file: str
    source: str
    reason: str


@dataclass(frozen=True)
class Conflict:
    """Two sources of information that disagree, and the rule that decided."""

    source: str
    kind: str
    file: str
    detail: str
    rule: str


@dataclass
class RowCounts:
    """Where the rows of one metadata table ended."""

    recorded: int = 0
    quarantined: int = 0
    ignored: int = 0
    ignored_rules: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.recorded + self.quarantined + self.ignored


@dataclass
class SourceIndex:
    """What a reader found: records, quarantine rows, conflicts, the metadata tables it read
    (path → note), where each table's rows ended, and the files it serves to another source
    (SCR's masks, read through a ``jsrt`` source)."""

    records: list[ImageRecord] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    rows: dict[str, RowCounts] = field(default_factory=dict)
    served: dict[str, str] = field(default_factory=dict)  # files another source reads (path → rule)
    ignored: dict[str, str] = field(default_factory=dict)  # files the layout names but leaves (path → rule)

    def skip(self, source: str, file: Path | str, reason: str) -> None:
        self.quarantine.append(QuarantineRow(printable(str(file)), source, reason))

    def drop(self, source: str, rec: ImageRecord, reason: str) -> None:
        """Quarantine a record already made; its metadata row, if any, counts as quarantined."""
        self.skip(source, rec.source_path, reason)
        counts = self.rows.get(rec.row)
        if counts is not None:
            counts.recorded -= 1
            counts.quarantined += 1

    def conflict(self, source: str, kind: str, file: Path | str, *, detail: str, rule: str) -> None:
        self.conflicts.append(Conflict(source, kind, printable(str(file)), detail, rule))


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) escaped as ``\\xNN``,
    and the bytes of a name that is not UTF-8 (decoded as surrogates) as ``\\xNN``: one
    table row per file, whatever its name."""
    return "".join(
        c if c.isprintable() or c == " " else f"\\x{ord(c) - 0xDC00 if 0xDC80 <= ord(c) <= 0xDCFF else ord(c):02x}"
        for c in text
    )


def name_problem(text: str) -> str:
    """Why a file name cannot stand in a table row, or ``""``."""
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return "file name is not valid UTF-8 (shown with \\xNN escapes): rename the file"
    if any(not (c.isprintable() or c == " ") for c in text):
        return "file name holds control characters (a newline or tab?): rename the file"
    return ""


def outside(path: Path, roots: Sequence[Path]) -> Path | None:
    """Where ``path`` really leads (symlinks and ``..`` resolved) when that is outside every
    folder of ``roots`` (resolved already: they are resolved once per source), else ``None``."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a link loop leads nowhere: it is not opened either
        return LINK_LOOP
    return None if any(real == root or root in real.parents for root in roots) else real


#: what :func:`outside` returns for a link loop
LINK_LOOP = Path("<a link loop>")


def leaves_source(escaped: Path) -> str:
    """The quarantine reason of a metadata path that leads out of its source folder."""
    if escaped == LINK_LOOP:
        return "a link loop: not opened"
    return f"metadata path leads outside the source folder (to {escaped}): not opened"


class SourceLayoutError(FileNotFoundError):
    """The source folder does not hold the layout its format expects."""


def _regular(path: Path) -> bool:
    """``path`` is (or links to) a regular file; a link loop or an entry that cannot be
    examined is not (the intake walk quarantines it with its reason)."""
    try:
        return path.is_file()
    except (OSError, RuntimeError):
        return False


def source_files(root: Path, pattern: str) -> list[Path]:
    """The regular files under ``root`` matching ``pattern``, hidden files left out."""
    return sorted(p for p in root.rglob(pattern) if not p.name.startswith(".") and _regular(p))


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


#: the oldest age a record may carry; a larger figure is not an age in years
MAX_AGE = 120


def _clean_text(text: str) -> str:
    """``text`` with tabs, newlines and other control characters as single spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def validate_record(rec: ImageRecord) -> None:
    """Make a record's values fit the manifest, noting each change in ``rec.notes``: an age
    outside 0..:data:`MAX_AGE` years becomes unknown, a blank patient id becomes the file's
    own (one patient per film), control characters in a text field become spaces."""
    namespace, _, ident = rec.patient_id.partition(":")
    clean = _clean_text(ident)
    if clean != ident.strip() and clean:
        rec.notes.append(f"patient id {printable(ident)!r} held control characters: replaced by spaces")
    if not clean:
        clean = rec.stem
        rec.notes.append(f"blank patient id: the file's own ({clean!r}), one patient per film")
    rec.patient_id = f"{_clean_text(namespace) or rec.source}:{clean}"
    if rec.age is not None and not 0 <= rec.age <= MAX_AGE:
        rec.notes.append(f"age {rec.age:g} is not an age in years (0-{MAX_AGE}): recorded as unknown")
        rec.age = None
    for name in ("view", "finding_raw", "license"):
        value = getattr(rec, name)
        if value != _clean_text(value) and any(not c.isprintable() for c in value):
            setattr(rec, name, _clean_text(value))
            rec.notes.append(f"{name} held control characters: replaced by spaces")
