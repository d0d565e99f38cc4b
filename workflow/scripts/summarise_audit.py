"""Rule summarise_audit: class x source table, probe table and verdict of the confound audit."""

from typing import TYPE_CHECKING

from patchcxr.audit.verdict import summarise, write_summary
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(
    predictions: list[str],
    probes: list[tuple[str, str]],
    inputs: str,
    cohort: str,
    settings: dict[str, float | int | str],
    out: dict[str, str],
    log: str,
) -> None:
    setup_logging(log)
    table, probe_rows, result = summarise(
        predictions=dict(zip(probes, predictions, strict=True)),
        inputs_path=inputs,
        cohort_path=cohort,
        labels=str(settings["labels"]),
        n_boot=int(settings["bootstrap"]),
        seed=int(settings["seed"]),
        n_perm=int(settings["permutations"]),
        alpha=float(settings["alpha"]),
        equivalence=float(settings["equivalence"]),
        purity=float(settings["purity"]),
    )
    write_summary(table, probe_rows, result, out)


main(
    [str(p) for p in snakemake.input.predictions],
    [(str(m), str(v)) for m, v in snakemake.params.probes],
    snakemake.input.inputs,
    snakemake.input.cohort,
    {k: snakemake.params[k] for k in ("labels", "bootstrap", "seed", "permutations", "alpha", "equivalence", "purity")},
    {k: snakemake.output[k] for k in ("class_source", "probes", "verdict")},
    snakemake.log[0],
)
