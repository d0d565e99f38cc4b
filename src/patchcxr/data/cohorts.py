"""Cohorts: which manifest images an experiment uses, with which label.

* ``all`` — every manifest image with a class (label rules applied; paediatric images
  left out when ``exclude_paediatric`` is set, as the paper did, method.md §2.1).
* ``oh2020`` — exactly the images of the paper's ``metadata.xls`` (four sheets:
  ``Cohen et al``, ``CoronaHack``, ``JSRT``, ``NLM(MC)``; 503 rows: Normal 192, bacteria 54,
  TB 58, Virus 20, COVID-19 179; method.md §2.3), labelled by the sheet's ``Class`` column.
  One Cohen film is listed under two sheets: 502 distinct files (normal 191), as the
  paper's Table II. Rows the cohort lacks are reported in ``cohort_missing.tsv`` with their
  cause.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from patchcxr.data.labels import label4_of
from patchcxr.io import write_tsv

log = logging.getLogger(__name__)

OH2020_SHEETS = {
    # sheet: formats whose images it names
    "Cohen et al": ("cohen",),
    "CoronaHack": ("kermany", "coronahack"),
    "JSRT": ("jsrt",),
    "NLM(MC)": ("montgomery",),
}
OH2020_CLASSES = {"normal": "normal", "bacteria": "bacterial", "tb": "tb", "virus": "viral", "covid-19": "covid19"}
OH2020_COUNTS = {"normal": 192, "bacterial": 54, "tb": 58, "viral": 20, "covid19": 179}
#: ``paediatric`` (1/0, the manifest's flag): a child's film. The paper says it excluded
#: them (method.md §2.1), yet its sheet lists Kermany films (its 98 normals and 21 bacterial
#: CoronaHack films: the Guangzhou paediatric collection): the cohort table flags them and
#: the paper target reports the adult-only test beside the full one
COHORT_COLUMNS = ["image_id", "label5", "label4", "patient_id", "source", "paediatric", "cohort_row"]
MISSING_COLUMNS = ["sheet", "filename", "class", "reason"]
#: the quarantine reason the manifest gives a pixel duplicate, followed by the kept image's
#: id (patchcxr.data.harmonise writes it; a sheet row finds its film through it)
DUPLICATE = "duplicate image: same pixels (sha256) as "


def read_oh2020(path: Path | str) -> pd.DataFrame:
    """The rows of ``metadata.xls``: sheet, filename, stem, patientid, view, finding, sex, age,
    sheet_class (as written) and label5."""
    with warnings.catch_warnings():
        # pandas 3 deprecates its xlrd engine; xlrd is still the reader of legacy .xls
        warnings.filterwarnings("ignore", message="The xlrd engine is deprecated")
        sheets = pd.read_excel(path, sheet_name=None, engine="xlrd", dtype=str)
    frames = []
    for sheet, df in sheets.items():
        if sheet not in OH2020_SHEETS:
            raise ValueError(f"{path}: unexpected sheet {sheet!r}; expected {list(OH2020_SHEETS)}")
        df = df.fillna("")
        cls = df["Class"].str.strip().str.lower()
        unknown = set(cls) - set(OH2020_CLASSES)
        if unknown:
            raise ValueError(f"{path}: sheet {sheet!r} has unknown Class values {sorted(unknown)}")
        frames.append(
            pd.DataFrame(
                {
                    "sheet": sheet,
                    "filename": df["filename"].str.strip(),
                    "stem": df["filename"].str.strip().map(_stem),
                    "patientid": df["patientid"].str.strip(),
                    "view": df["view"].str.strip(),
                    "finding": df["finding"].str.strip(),
                    "sex": df["sex"].str.strip(),
                    "age": df["age"].str.strip(),
                    "sheet_class": df["Class"].str.strip(),
                    "label5": cls.map(OH2020_CLASSES),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _quarantined(quarantine: pd.DataFrame | None, formats: Mapping[str, str]) -> dict[tuple[str, str], list[str]]:
    """(format, lower-case file stem) → the quarantine reasons of those files."""
    held: dict[tuple[str, str], list[str]] = {}
    if quarantine is not None:
        for file, source, reason in zip(quarantine["file"], quarantine["source"], quarantine["reason"], strict=True):
            held.setdefault((formats.get(source, ""), _stem(Path(file).name).lower()), []).append(reason)
    return held


def _stem(filename: str) -> str:
    """File stem without every image suffix (``JPCNN015.IMG`` → ``JPCNN015``)."""
    name = Path(filename).name
    for suffix in (".png", ".jpg", ".jpeg", ".gif", ".img", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[:-4] if name.lower().endswith(".img") else name


def select_cohort(
    manifest: pd.DataFrame,
    cohort: str,
    cohort_path: Path | str,
    missing_path: Path | str,
    *,
    metadata: Path | str | None = None,
    exclude_paediatric: bool = True,
    source_order: Mapping[str, int] | None = None,
    quarantine: pd.DataFrame | None = None,
    source_formats: Mapping[str, str] | None = None,
    sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Write the cohort table (and the missing-image report) and return the cohort.

    Args:
        manifest: the manifest (all columns as text).
        cohort: ``"all"`` or ``"oh2020"``.
        cohort_path, missing_path: outputs.
        metadata: the paper's ``metadata.xls`` (``oh2020`` only).
        exclude_paediatric: leave out paediatric images (``all`` only: the paper's sheet
            is taken as it is).
        source_order: configuration order of sources; when a sheet row matches images of
            several sources (two renditions of Montgomery), the first is taken.
        quarantine: the quarantine table, and ``source_formats`` (source → format): a sheet
            row whose file was quarantined is reported with the quarantine's reason, and
            one quarantined as a pixel duplicate of a kept image is found through it.
        sources: draw the cohort from these sources only (config ``data.cohort_sources``;
            empty or ``None``: every source). The others still serve segmentation.

    ``cohort_missing.tsv`` gives each sheet row left out its cause: no such file in any
    source, quarantined (with the reason), or listed twice in the sheet.
    """
    missing = pd.DataFrame(columns=MISSING_COLUMNS)
    if cohort == "all":
        sel = manifest[manifest["label5"] != ""]
        if exclude_paediatric:
            sel = sel[sel["paediatric"] != "1"]
        out = sel.assign(cohort_row="")
    elif cohort == "oh2020":
        if metadata is None:
            raise ValueError("cohort oh2020 needs the paper's metadata.xls")
        sheet = read_oh2020(metadata)
        order = source_order or {}
        m = manifest.assign(
            stem=manifest["image_id"].str.split("/", n=1).str[1],
            _o=manifest["source"].map(lambda s: order.get(s, len(order))),
        )
        held = _quarantined(quarantine, source_formats or {})
        rows, lost = [], []
        listed: dict[str, str] = {}  # file stem -> its first sheet row
        for i, r in enumerate(sheet.itertuples(index=False)):
            if r.stem.lower() in listed:  # one film under two sheets (Cohen et al, CoronaHack)
                reason = f"listed twice in the sheet (first as {listed[r.stem.lower()]})"
                lost.append({"sheet": r.sheet, "filename": r.filename, "class": r.sheet_class, "reason": reason})
                continue
            listed[r.stem.lower()] = f"{r.sheet}:{i}"
            formats = OH2020_SHEETS[r.sheet]
            cand = m[m["format"].isin(formats) & (m["stem"].str.lower() == r.stem.lower())]
            reasons = [q for f in formats for q in held.get((f, r.stem.lower()), [])]
            kept = [q.removeprefix(DUPLICATE) for q in reasons if q.startswith(DUPLICATE)]
            if cand.empty and kept:  # a pixel duplicate: the kept copy is the sheet's film
                cand = m[m["image_id"] == kept[0]]
            if cand.empty:
                reason = f"quarantined: {reasons[0]}" if reasons else "no such file in any source"
                lost.append({"sheet": r.sheet, "filename": r.filename, "class": r.sheet_class, "reason": reason})
                continue
            hit = cand.sort_values(["_o", "image_id"]).iloc[0]
            rows.append(
                hit.to_dict() | {"label5": r.label5, "label4": label4_of(r.label5), "cohort_row": f"{r.sheet}:{i}"}
            )
        out = (
            pd.DataFrame(rows, columns=[*manifest.columns, "cohort_row"])
            if rows
            else pd.DataFrame(columns=COHORT_COLUMNS)
        )
        dup = out["image_id"].duplicated()
        if dup.any():
            # two sheet rows naming one file: keep one, report the other
            first = dict(zip(out.loc[~dup, "image_id"], out.loc[~dup, "cohort_row"], strict=True))
            for r in out[dup].itertuples():
                lost.append(
                    {
                        "sheet": r.cohort_row.split(":")[0],
                        "filename": r.image_id,
                        "class": r.label5,
                        "reason": f"listed twice in the sheet (kept as {first[r.image_id]})",
                    }
                )
            out = out[~dup]
        missing = pd.DataFrame(lost, columns=MISSING_COLUMNS)
        log.info("oh2020: %d of %d listed images found, %d missing", len(out), len(sheet), len(missing))
    else:
        raise ValueError(f"unknown cohort {cohort!r}; expected 'all' or 'oh2020'")
    if sources:
        outside = ~out["source"].isin(list(sources))
        if cohort == "oh2020" and outside.any():  # sheet rows found, in a source left out
            left = pd.DataFrame(
                {
                    "sheet": out.loc[outside, "cohort_row"].str.split(":").str[0],
                    "filename": out.loc[outside, "image_id"],
                    "class": out.loc[outside, "label5"],
                    "reason": "its source is not in data.cohort_sources",
                }
            )
            missing = pd.concat([missing, left], ignore_index=True)
        out = out[~outside]
    out = out[COHORT_COLUMNS].reset_index(drop=True)
    write_tsv(cohort_path, out)
    write_tsv(missing_path, missing)
    return out
