"""Rule summarise_external: each held-out source's figures beside the internal model's on the same films."""

from typing import TYPE_CHECKING

from patchcxr.evaluation.external import external_table
from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    inputs: dict[str, list[str]], plan: str, models: list[str], figures: dict[str, int], out: str, log: str
) -> None:
    setup_logging(log)
    table = read_tsv(plan, typed=True)
    held = [str(s) for s in table.loc[table["held_out"] == 1, "source"]]
    runs = [(s, m) for s in held for m in models]
    external = {run: read_tsv(p, typed=True) for run, p in zip(runs, inputs["predictions"], strict=True)}
    internal = {m: read_tsv(p, typed=True) for m, p in zip(models, inputs["internal_predictions"], strict=True)}
    write_tsv(out, external_table(table, external, internal, **figures))


main(
    {k: [str(p) for p in snakemake.input[k]] for k in ("predictions", "internal_predictions")},
    snakemake.input.plan,
    [str(m) for m in snakemake.params.models],
    {k: int(getattr(snakemake.params, k)) for k in ("n_boot", "seed", "min_patients")},
    snakemake.output[0],
    snakemake.log[0],
)
