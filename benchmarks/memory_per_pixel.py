"""Peak memory per output pixel of `upscale image`'s engine on large images (CPU).

Each size runs in a fresh process: the model is loaded and the input made, then the resident set size is
read (VmRSS); the image is upscaled, and the growth of the peak (VmHWM) over that, divided by the output
pixels, is what the upscaling itself needs. 8-bit RGB output is 3 bytes per pixel; the rest is the engine.

    python benchmarks/memory_per_pixel.py --model trinas-x2 --sizes 1200 2400 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys
import numpy as np, torch
from upscale import Upscaler
spec, side, threads, tta = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
up = Upscaler.from_pretrained(spec, device="cpu", threads=threads, tta=tta)
image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
up.upscale_array(image[:64, :64])  # warm-up: thread pools, allocator

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

before = status("VmRSS:")
out = up.upscale_array(image)
peak = status("VmHWM:")
print(json.dumps({"side": side, "scale": up.scale, "output_pixels": out.shape[0] * out.shape[1],
                  "peak_growth_bytes": max(0, peak - before)}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="trinas-x2")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1200, 2400], help="input sides (square)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args(argv)
    print(f"{'input':>11} {'output':>11} {'peak growth':>12} {'bytes / output pixel':>21}")
    rows = []
    for side in args.sizes:
        done = subprocess.run([sys.executable, "-c", CHILD, args.model, str(side), str(args.threads),
                               "1" if args.tta else "0"], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        per_pixel = row["peak_growth_bytes"] / row["output_pixels"]
        out_side = side * row["scale"]
        print(f"{side:>5}x{side:<5} {out_side:>5}x{out_side:<5} {row['peak_growth_bytes'] / 2**20:>9.0f} MB "
              f"{per_pixel:>21.1f}")
        rows.append({**row, "bytes_per_output_pixel": per_pixel})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
