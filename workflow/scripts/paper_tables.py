"""Rule paper_tables: one table of results/paper/, its registry entry's builder on its
inputs, and its report page (title, caption, rows, the TSV to download)."""

from pathlib import Path
from typing import TYPE_CHECKING

from patchcxr.io import atomic_write_text, write_tsv
from patchcxr.logs import setup_logging
from patchcxr.paper.registry import build_table
from patchcxr.paper.report import table_html

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    name: str,
    inputs: dict[str, list[str]],
    runs: list[tuple[str, int]],
    out: str,
    page: str,
    text: tuple[str, str, str],
    log: str,
) -> None:
    setup_logging(log)
    table = build_table(name, inputs, runs)
    write_tsv(out, table)
    title, caption, banner = text
    html = table_html(
        title, caption, banner=banner, table=table, tsv_name=Path(out).name, tsv_text=Path(out).read_text()
    )
    atomic_write_text(page, html)


main(
    snakemake.wildcards.name,
    # every name holds a list of paths (the registry's inputs; empty where a plan has none)
    {name: [str(p) for p in paths] for name, paths in snakemake.input.items()},
    [(str(m), int(s)) for m, s in snakemake.params.runs],
    snakemake.output.table,
    snakemake.output.page,
    (str(snakemake.params.title), str(snakemake.params.caption), str(snakemake.params.banner)),
    snakemake.log[0],
)
