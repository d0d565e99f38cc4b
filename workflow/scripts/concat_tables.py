"""Rule collect_classifier_inputs: join per-shard tables into one TSV."""

from typing import TYPE_CHECKING

import pandas as pd

from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(parts: list[str], out: str, log: str) -> None:
    setup_logging(log)
    df = pd.concat([read_tsv(p) for p in parts], ignore_index=True)
    write_tsv(out, df.sort_values("image_id"))


main(list(snakemake.input), snakemake.output[0], snakemake.log[0])
