"""Rule paper_tables: one table of results/paper/, its registry entry's builder on its inputs."""

from typing import TYPE_CHECKING

from patchcxr.io import write_tsv
from patchcxr.logs import setup_logging
from patchcxr.paper.registry import build_table

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(name: str, inputs: dict[str, list[str]], runs: list[tuple[str, int]], out: str, log: str) -> None:
    setup_logging(log)
    write_tsv(out, build_table(name, inputs, runs))


main(
    snakemake.wildcards.name,
    # every name holds a list of paths (the registry's inputs; empty where a plan has none)
    {name: [str(p) for p in paths] for name, paths in snakemake.input.items()},
    [(str(m), int(s)) for m, s in snakemake.params.runs],
    snakemake.output[0],
    snakemake.log[0],
)
