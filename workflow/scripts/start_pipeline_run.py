"""Rule start_pipeline_run: the MLflow parent run of this configuration."""

import json
from typing import TYPE_CHECKING, Any

from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging
from patchcxr.tracking import start_pipeline_run

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(tracking: dict[str, Any], config: dict[str, Any], out: str, log: str) -> None:
    setup_logging(log)
    info = start_pipeline_run(tracking, config)
    atomic_write_text(out, json.dumps(info, indent=2, sort_keys=True) + "\n")


main(dict(snakemake.params.tracking), dict(snakemake.params.config), snakemake.output[0], snakemake.log[0])
