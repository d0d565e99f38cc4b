"""Rule collect_classifier_inputs: join per-shard tables into one TSV."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(parts: list[str], out: str, log: str) -> None:
    setup_logging(log)
    df = pd.concat([pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in parts], ignore_index=True)
    atomic_write_text(out, df.sort_values("image_id").to_csv(sep="\t", index=False, lineterminator="\n"))


main(list(snakemake.input), snakemake.output[0], snakemake.log[0])
