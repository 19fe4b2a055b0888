"""Pack training images into a folder small enough to travel to a lent GPU machine (the tree that travels is at
most 64 MiB), so a screening run (the search controls, the recipe ablation) or a training run can go there.

Images are taken in a fixed order (each source folder in turn, file names sorted), photos larger than
`--max-side` are shrunk with the protocol's bicubic (as training does anyway), and each is written as PNG
until the next one would pass `--max-mb`. The same command gives the same folder. Every network of one
comparison must train on the same data: run a whole comparison from one pack, never mix packs.

    python benchmarks/pack_data.py --train ../shared/data/train --out device-data/train --max-mb 48

Lists what it took and what it left out in OUT/PACKED.txt.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from trinas.data import list_images, load_rgb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="HR image folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-mb", type=float, default=48.0)
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    budget, used, taken, left = args.max_mb * 2**20, 0, [], []
    for path in list_images(args.train):
        buffer = io.BytesIO()
        Image.fromarray(load_rgb(path, args.max_side)).save(buffer, format="PNG", optimize=True)
        if used + buffer.tell() > budget:
            left.append(path)
            continue
        name = f"{len(taken):05d}-{path.parent.name}-{path.stem}.png"
        (args.out / name).write_bytes(buffer.getvalue())
        used += buffer.tell()
        taken.append(path)
    lines = [f"{len(taken)} images, {used / 2**20:.1f} MiB (max side {args.max_side}); left out {len(left)}:"]
    lines += [str(p) for p in left]
    (args.out / "PACKED.txt").write_text("\n".join(lines) + "\n")
    print(lines[0])


if __name__ == "__main__":
    main()
