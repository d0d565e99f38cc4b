"""Rule classifier_input_settings: how every classifier input is made, written once."""

from typing import TYPE_CHECKING, Any

from patchcxr.classification.settings import InputSettings
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(classification: dict[str, Any], preprocessing: dict[str, Any], out: str, log: str) -> None:
    setup_logging(log)
    InputSettings.from_config(classification, preprocessing).write(out)


main(dict(snakemake.params.classification), dict(snakemake.params.preprocessing), snakemake.output[0], snakemake.log[0])
