"""Rule index_source: list a source's images and metadata (no decoding), and account for
every file under its folder."""

import logging
import sys
from typing import TYPE_CHECKING, Any

from patchcxr.data.harmonise import display_path, write_index
from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import account_source, read_source
from patchcxr.data.records import SourceLayoutError
from patchcxr.logs import setup_logging

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main(name: str, spec: dict[str, Any], labels: dict[str, Any], outputs: dict[str, str], log: str) -> None:
    setup_logging(log)
    try:
        index = read_source(name, spec, LabelRules.from_config(labels))
    except SourceLayoutError as err:  # the folder or its metadata: the cause in the log, one line on exit
        logging.getLogger("patchcxr.data").exception("%s", err)
        sys.exit(f"index_source: {err}")
    files = account_source(name, spec, index, display_path)
    write_index(
        index,
        outputs["index"],
        outputs["quarantine"],
        files=files,
        files_path=outputs["files"],
        conflicts_path=outputs["conflicts"],
    )


main(
    snakemake.wildcards.source,
    dict(snakemake.params.spec),
    dict(snakemake.params.labels),
    {k: snakemake.output[k] for k in ("index", "quarantine", "files", "conflicts")},
    snakemake.log[0],
)
