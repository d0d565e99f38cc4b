"""Rule report_about: the report's "About this run" page (the configuration in prose)."""

from typing import TYPE_CHECKING, Any

import yaml

from patchcxr.io import atomic_write_text
from patchcxr.logs import setup_logging
from patchcxr.paper.about import about_html

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(config: dict[str, Any], out: str, log: str) -> None:
    setup_logging(log)
    atomic_write_text(out, about_html(config, yaml.safe_dump(config, sort_keys=False)))


main(dict(snakemake.params.config), snakemake.output[0], snakemake.log[0])
