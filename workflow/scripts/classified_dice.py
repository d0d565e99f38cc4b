"""Rule classified_dice: the mask network's lung Dice on the classified films, by class."""

from typing import TYPE_CHECKING

from patchcxr.io import read_tsv, write_tsv
from patchcxr.logs import setup_logging
from patchcxr.segmentation.evaluate import dice_by_class

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(scores: str, split: str, out: str, params: dict[str, object], log: str) -> None:
    setup_logging(log)
    table = dice_by_class(
        read_tsv(scores, typed=True),
        read_tsv(split),
        labels=str(params["labels"]),
        model=str(params["model"]),
        preprocessing=str(params["preprocessing"]),
        mask_seed=int(params["mask_seed"]),
        n_boot=int(params["bootstrap"]),
        n_perm=int(params["permutations"]),
        seed=int(params["seed"]),
        min_patients=int(params["min_patients"]),
    )
    write_tsv(out, table)


main(
    snakemake.input.scores,
    snakemake.input.split,
    snakemake.output[0],
    {
        k: getattr(snakemake.params, k)
        for k in ("labels", "model", "preprocessing", "mask_seed", "bootstrap", "permutations", "min_patients", "seed")
    },
    snakemake.log[0],
)
