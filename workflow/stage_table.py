"""Print the workflow's stages (workflow/stages.yaml) with their result folders: what
`make demo` shows when it finishes."""

from pathlib import Path

import yaml


def main() -> None:
    stages = yaml.safe_load((Path(__file__).parent / "stages.yaml").read_text())
    for name, spec in stages.items():
        print(f"  {name:<13} {', '.join(spec['folders']):<48} {spec['summary']}")  # noqa: T201


if __name__ == "__main__":
    main()
