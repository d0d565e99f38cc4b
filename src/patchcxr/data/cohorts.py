"""Cohorts: which manifest images an experiment uses, with which label.

* ``all`` — every manifest image with a class (label rules applied; paediatric images
  left out when ``exclude_paediatric`` is set, as the paper did, method.md §2.1).
* ``oh2020`` — exactly the 503 images of the paper's ``metadata.xls`` (four sheets:
  ``Cohen et al``, ``CoronaHack``, ``JSRT``, ``NLM(MC)``; Normal 192, bacteria 54, TB 58,
  Virus 20, COVID-19 179; method.md §2.3), labelled by the sheet's ``Class`` column.
  Images the sheet lists but the manifest lacks are reported in ``cohort_missing.tsv``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
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
        rows, lost = [], []
        for i, r in enumerate(sheet.itertuples(index=False)):
            cand = m[m["format"].isin(OH2020_SHEETS[r.sheet]) & (m["stem"].str.lower() == r.stem.lower())]
            if cand.empty:
                lost.append(
                    {
                        "sheet": r.sheet,
                        "filename": r.filename,
                        "class": r.sheet_class,
                        "reason": "not in the manifest (not downloaded, quarantined or renamed)",
                    }
                )
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
            for r in out[dup].itertuples():
                lost.append(
                    {
                        "sheet": r.cohort_row.split(":")[0],
                        "filename": r.image_id,
                        "class": r.label5,
                        "reason": "listed twice in metadata.xls",
                    }
                )
            out = out[~dup]
        missing = pd.DataFrame(lost, columns=MISSING_COLUMNS)
        log.info("oh2020: %d of %d listed images found, %d missing", len(out), len(sheet), len(missing))
    else:
        raise ValueError(f"unknown cohort {cohort!r}; expected 'all' or 'oh2020'")
    out = out[COHORT_COLUMNS].reset_index(drop=True)
    write_tsv(cohort_path, out)
    write_tsv(missing_path, missing)
    return out
