"""Checkpoint plan_external: which cohort sources leave-one-source-out holds out, and their splits."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from patchcxr.data.splits import leave_one_source_out
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake

log = logging.getLogger("patchcxr.external")


def main(
    cohort: str, fractions: dict[str, float], seed: int, labels: str, plan: str, splits: str, log_file: str
) -> None:
    setup_logging(log_file)
    table, held_out = leave_one_source_out(read_tsv(cohort), fractions, seed, labels=labels)
    Path(splits).mkdir(parents=True, exist_ok=True)
    for source, split in held_out.items():
        write_tsv(Path(splits) / f"{source}.tsv", split[["image_id", "patient_id", "label5", "label4", "split"]])
        log.info("%s held out: %s", source, split.groupby("split").size().to_dict())
    for r in table[table["held_out"] == 0].itertuples():
        log.info("%s not held out: %s", r.source, r.reason)
    write_tsv(plan, table)


main(
    snakemake.input.cohort,
    dict(snakemake.params.fractions),
    int(snakemake.params.seed),
    str(snakemake.params.labels),
    snakemake.output.plan,
    snakemake.output.splits,
    snakemake.log[0],
)
