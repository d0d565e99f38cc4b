"""Intake accounting: every file and every metadata row of a source ends in exactly one place.

A source folder holds images, masks, metadata tables and whatever else a download brings.
The readers (:mod:`patchcxr.data.readers`) pick what their layout uses; this module makes
the rest visible and keeps one bad item from stopping a source:

- :func:`walk_source` lists every entry under a folder without following links and without
  opening anything: regular files, and the entries that are not (a FIFO, a socket, a
  broken link, a link loop, a folder that cannot be read), each of which is a quarantine
  row, never an exception;
- :func:`read_table` reads a metadata table whatever its encoding (UTF-8 with or without a
  byte-order mark, UTF-16, cp1252 with a note), without a field-size limit, and checks its
  required columns by name (the error names the missing ones and the columns found);
- :func:`each_row` runs a reader's handling of each row in isolation: an exception
  quarantines that row only, and every row is counted as recorded, quarantined or ignored
  by a named rule;
- :func:`file_table` gives each file found its disposition at indexing (image, mask,
  metadata, quarantined, ignored with the rule), and :func:`intake_summary` joins it with
  the manifest and the quarantine into ``results/data/intake.tsv``: per source, files
  found = in the manifest + quarantined + ignored, and metadata rows likewise.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from patchcxr.data.records import RowCounts, SourceIndex, SourceLayoutError, printable

#: columns of ``results/data/index/<source>.files.tsv``
FILE_COLUMNS = ["file", "disposition", "rule", "rows", "rows_recorded", "rows_quarantined", "rows_ignored"]
#: columns of ``results/data/intake.tsv``
INTAKE_COLUMNS = [
    "source",
    "files",
    "in_manifest",
    "quarantined",
    "ignored",
    "images",
    "masks",
    "metadata",
    "rows",
    "rows_recorded",
    "rows_quarantined",
    "rows_ignored",
    "balanced",
]
DISPOSITIONS = ("image", "mask", "metadata", "quarantined", "ignored")
MASK_OF = "mask of "


# --------------------------------------------------------------------------- walking
@dataclass(frozen=True)
class Entry:
    """One entry under a source folder: a regular file (``problem`` empty) or something
    that is not, with the reason."""

    path: Path
    problem: str = ""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def walk_source(root: Path) -> list[Entry]:
    """Every entry under ``root``, sorted, links not followed and nothing opened.

    A regular file, or a link that leads to one, is an :class:`Entry` without a problem; a
    link to a folder is not followed (``problem`` says so); a FIFO, socket, device, broken
    link, link loop or unreadable folder is an entry with its reason.
    """
    out: list[Entry] = []

    def unreadable(err: OSError) -> None:
        where = Path(err.filename) if err.filename else root
        out.append(
            Entry(where, f"folder cannot be read ({err.strerror or type(err).__name__}): its files are not indexed")
        )

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=False):
        base = Path(folder)
        for name in dirs:
            if (base / name).is_symlink():
                out.append(
                    Entry(base / name, "a link to a folder: not followed (copy the folder into the source instead)")
                )
        for name in files:
            path = base / name
            try:
                mode = os.stat(path).st_mode  # a link's: where it leads
            except OSError as err:
                problem = (
                    "a link loop" if err.errno == errno.ELOOP else f"a broken link or unreadable entry ({err.strerror})"
                )
                out.append(Entry(path, f"{problem}: not opened"))
                continue
            out.append(
                Entry(path) if stat.S_ISREG(mode) else Entry(path, f"{_kind(mode)}, not a regular file: not opened")
            )
    return sorted(out, key=lambda e: str(e.path))


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A metadata table: its rows with their line numbers, the encoding read and a note."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    encoding: str
    note: str = ""


def decode_text(data: bytes) -> tuple[str, str, str]:
    """``(text, encoding, note)`` of a metadata file's bytes: UTF-8 with or without a BOM,
    UTF-16 (by its BOM, or by its zero bytes when it has none), else cp1252 with a note
    (Excel on Windows), else Latin-1 with a note (every byte decodes)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig", ""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16", ""
    head = data[:4096]
    if len(head) >= 4 and head.count(b"\x00") >= len(head) // 4:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        encoding = "utf-16-be" if even > odd else "utf-16-le"
        return data.decode(encoding, errors="replace"), encoding, f"read as {encoding} (no byte-order mark)"
    try:
        return data.decode("utf-8"), "utf-8", ""
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252", "not UTF-8: read as cp1252 (Windows); check accented names"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1", "neither UTF-8 nor cp1252: read as Latin-1; check the text"


def read_table(path: Path, required: Iterable[str], source: str) -> Table:
    """A metadata CSV, whatever its encoding, with no field-size limit; column names are
    stripped of white space.

    Raises:
        SourceLayoutError: the file cannot be read, or lacks a required column (naming the
            missing columns and the columns found).
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SourceLayoutError(
            f"{source}: metadata file {path} cannot be read ({err.strerror or type(err).__name__})"
        ) from None
    text, encoding, note = decode_text(data)
    csv.field_size_limit(sys.maxsize)  # a long cell is data, not an error
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header = []
    missing = [c for c in required if c not in header]
    if missing:
        raise SourceLayoutError(
            f"{source}: metadata file {path} lacks the column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(printable(h) for h in header) or '(none: the file is empty)'}"
        )
    rows = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line is no row
            rows.append((reader.line_num, dict(zip(header, cells, strict=False))))
    except csv.Error as err:
        raise SourceLayoutError(
            f"{source}: metadata file {path} is not a readable CSV at line {reader.line_num}: {err}"
        ) from None
    return Table(path, header, rows, encoding, note)


def one_metadata_file(candidates: list[Path], name: str, source: str, root: Path) -> Path:
    """The one metadata file of a source.

    Raises:
        SourceLayoutError: none, or more than one (naming them).
    """
    if not candidates:
        raise SourceLayoutError(f"{source}: no {name} under {root}")
    if len(candidates) > 1:
        listed = ", ".join(str(p) for p in candidates)
        raise SourceLayoutError(f"{source}: {len(candidates)} files named {name} under {root} ({listed}): keep one")
    return candidates[0]


# --------------------------------------------------------------------------- rows
def each_row(
    index: SourceIndex, source: str, table: Table, handle: Callable[[int, Mapping[str, str]], str | None]
) -> None:
    """Run ``handle(line, row)`` on every row of ``table`` in isolation.

    ``handle`` appends a record or a quarantine row, or returns the rule by which the row is
    ignored. An exception quarantines that row only (what it had appended is undone). The
    outcome of every row is counted in ``index.rows[table.path]``.
    """
    counts = index.rows.setdefault(str(table.path), RowCounts())
    for line, row in table.rows:
        n_rec, n_q = len(index.records), len(index.quarantine)
        try:
            rule = handle(line, row)
        except Exception as err:  # the row's problem, not the source's
            del index.records[n_rec:]
            del index.quarantine[n_q:]
            index.skip(source, f"{table.path}:{line}", f"metadata row could not be read: {type(err).__name__}: {err}")
            rule = None
        if len(index.records) > n_rec:
            counts.recorded += 1
            for rec in index.records[n_rec:]:
                rec.row = str(table.path)
        elif len(index.quarantine) > n_q:
            counts.quarantined += 1
        else:
            counts.ignored += 1
            counts.ignored_rules[rule or "row yields no image"] += 1


# --------------------------------------------------------------------------- accounting
def path_key(path: Path | str) -> str:
    """One spelling of a path for matching: as the tables write it (control characters and
    bytes that are not UTF-8 escaped, :func:`~patchcxr.data.records.printable`), absolute,
    normalised, links not resolved."""
    return os.path.normpath(os.path.abspath(printable(str(path))))


def file_table(
    index: SourceIndex, source: str, entries: list[Entry], *, layout: str, display: Callable[[Path], str]
) -> pd.DataFrame:
    """Each entry's disposition at indexing: ``image`` (a record's film), ``mask`` (a
    record's mask), ``metadata`` (a table the reader used, with its row counts),
    ``quarantined`` (a quarantine row names it; an entry that is not a regular file gets
    its row here) or ``ignored`` (with the rule). ``file`` is written as ``display`` gives
    it (as the manifest writes paths)."""
    images = {path_key(r.source_path) for r in index.records}
    masks = {path_key(m): display(r.source_path) for r in index.records for m in r.masks.values()}
    quarantined = {path_key(q.file) for q in index.quarantine}
    metadata = {path_key(k): (k, note) for k, note in index.metadata.items()}
    served = {path_key(k): rule for k, rule in index.served.items()}
    left = {path_key(k): rule for k, rule in index.ignored.items()}
    rows: list[dict[str, object]] = []
    # a film reached through a link to a folder inside the source: the walk does not follow
    # the link, the reader did (and confined it to the source); it is listed as found
    walked = {path_key(e.path) for e in entries}
    reached = [r.source_path for r in index.records if path_key(r.source_path) not in walked]
    entries = [*entries, *(Entry(p) for p in dict.fromkeys(reached))]
    for e in entries:
        key = path_key(e.path)
        row: dict[str, object] = {"file": printable(display(e.path))}
        if e.problem:
            if key not in quarantined:
                index.skip(source, e.path, e.problem)
            row |= {"disposition": "quarantined", "rule": e.problem}
        elif key in images:
            row |= {"disposition": "image", "rule": ""}
        elif key in metadata:
            path, note = metadata[key]
            counts = index.rows.get(path, RowCounts())
            row |= {
                "disposition": "metadata",
                "rule": note,
                "rows": counts.total,
                "rows_recorded": counts.recorded,
                "rows_quarantined": counts.quarantined,
                "rows_ignored": counts.ignored,
            }
        elif key in quarantined:
            row |= {"disposition": "quarantined", "rule": ""}
        elif key in masks:
            row |= {"disposition": "mask", "rule": f"{MASK_OF}{printable(masks[key])}"}
        elif key in served:
            row |= {"disposition": "mask", "rule": served[key]}
        elif key in left:
            row |= {"disposition": "ignored", "rule": left[key]}
        elif e.path.name.startswith("."):
            row |= {"disposition": "ignored", "rule": "hidden file (name starts with '.')"}
        else:
            row |= {"disposition": "ignored", "rule": f"not a file of the layout ({layout})"}
        rows.append(row)
    return pd.DataFrame(rows, columns=FILE_COLUMNS).astype(object).fillna("")


def intake_summary(files: Mapping[str, pd.DataFrame], manifest: pd.DataFrame) -> pd.DataFrame:
    """Per source: the files found and where each ended, after harmonisation.

    A film indexed as ``image`` is in the manifest when a manifest row of its source names
    it, else quarantined (it failed decoding, or duplicates another); a mask is in the
    manifest when its film's row has a mask (a refused set leaves the film without masks:
    every mask of the set is then quarantined, the row naming the one that failed); a mask
    served to another source (SCR's, read through ``jsrt``) counts as in the manifest;
    metadata tables count as in the manifest (their rows are counted apart). Quarantine rows
    that name a film kept in the manifest (a missing mask) are notes: the film counts once,
    as in the manifest. ``balanced`` checks what the dispositions do not guarantee: every
    manifest row of the source names one film found under its folder.
    """
    out = []
    for source, table in files.items():
        rows = manifest[manifest["source"] == source] if len(manifest) else manifest
        films = {path_key(p) for p in rows["source_path"]} if len(rows) else set()
        masked = {path_key(p) for p, m in zip(rows["source_path"], rows["mask_path"], strict=True) if m}
        keys = [path_key(f) for f in table["file"]]
        disp = table["disposition"].tolist()
        images = [k for k, d in zip(keys, disp, strict=True) if d == "image"]
        masks = [
            (k, path_key(rule.removeprefix(MASK_OF)) if rule.startswith(MASK_OF) else "")
            for k, d, rule in zip(keys, disp, table["rule"], strict=True)
            if d == "mask"
        ]
        img_in = sum(k in films for k in images)
        # a mask served to another source (SCR) is counted where it is read
        mask_in = sum(not film or film in masked for _, film in masks)
        metadata = disp.count("metadata")
        quarantined = disp.count("quarantined") + (len(images) - img_in) + (len(masks) - mask_in)
        ignored = disp.count("ignored")
        in_total = img_in + mask_in + metadata
        meta = table[table["disposition"] == "metadata"]
        num = {c: int(pd.to_numeric(meta[c], errors="coerce").fillna(0).sum()) for c in FILE_COLUMNS[3:]}
        out.append(
            {
                "source": source,
                "files": len(table),
                "in_manifest": in_total,
                "quarantined": quarantined,
                "ignored": ignored,
                "images": img_in,
                "masks": mask_in,
                "metadata": metadata,
                **num,
                "balanced": int(img_in == len(rows)),
            }
        )
    return pd.DataFrame(out, columns=INTAKE_COLUMNS)
