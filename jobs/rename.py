"""Give a packaged model a new name, so that a better model can take its old one (as trinas-x4 became
trinas-x4-hand in session 22): moves weights/OLD to weights/NEW, rewrites the name in that model's config
(its name, Hub repository, recorded commands and design), adds NOTE to its design and regenerates its card.
Other models' configs are not rewritten: their mentions are history ("shipped as OLD until ..."), or a
reference to review by hand; they are listed.

    python jobs/rename.py OLD NEW "shipped as OLD until session N, when ... took that name"
"""

import re
import sys
from pathlib import Path

from trinas.export import read_config, write_config

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def renamed(value, pattern: re.Pattern, new: str):
    """`value` with every whole-word mention of the old name replaced, through nested lists and dicts (keys too:
    a speed record's `against` names models)."""
    if isinstance(value, str):
        return pattern.sub(new, value)
    if isinstance(value, list):
        return [renamed(v, pattern, new) for v in value]
    if isinstance(value, dict):
        return {renamed(k, pattern, new): renamed(v, pattern, new) for k, v in value.items()}
    return value


def main(old: str, new: str, note: str) -> None:
    source, target = WEIGHTS / old, WEIGHTS / new
    if not (source / "config.json").is_file() or target.exists():
        sys.exit(f"error: needs weights/{old} with a config.json and no weights/{new}")
    pattern = re.compile(rf"(?<![\w-]){re.escape(old)}(?![\w-])")
    config = renamed(read_config(source), pattern, new)
    config["design"] = "; ".join(part for part in (config.get("design"), note) if part)
    source.rename(target)
    write_config(target, config)
    for other in sorted(set(WEIGHTS.glob("*/config.json")) - {target / "config.json"}):
        for number, line in enumerate(other.read_text().splitlines(), 1):
            if pattern.search(line):
                print(f"review: {other.relative_to(WEIGHTS.parent)}:{number} still names {old}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
