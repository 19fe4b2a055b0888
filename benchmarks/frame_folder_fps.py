"""Frames per second as a user sees them: `upscale image` over a folder of PNG frames, writing JPEG.

The frames are a pan across a real picture (each one a window of the source at the frame size, shifted a few
pixels per frame), so decoding and encoding meet real content. Start-up (Python, torch, loading the model) is
excluded by difference: each round runs the command over a short folder and over a long one, and the frame
rate is the extra frames over the extra seconds. Rounds interleave the two, so a machine that slows down
mid-run slows both alike; the median round is reported, with the spread.

    python benchmarks/frame_folder_fps.py --model weights/trinas-x4-rt --size 320x180 --frames 200 --record

`--record` keeps the figure, with this command, in the model folder's config.json and card.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "lighthouse.png"


def pan_frames(source: np.ndarray, width: int, height: int, count: int) -> list[np.ndarray]:
    """`count` windows of `source`, width x height, sliding right then back (a camera pan)."""
    scale = max(width / source.shape[1], height / source.shape[0], 0.5) * 1.25
    source = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    travel = source.shape[1] - width
    top = (source.shape[0] - height) // 2
    frames = []
    for i in range(count):
        step = (i * 3) % (2 * travel) if travel > 0 else 0
        left = step if step <= travel else 2 * travel - step
        frames.append(np.ascontiguousarray(source[top:top + height, left:left + width]))
    return frames


def write_folder(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:05d}.png"), frame)


def run_command(model: str, frames_in: Path, frames_out: Path, quality: int, extra: list[str]) -> float:
    """Wall seconds of one `upscale image` run (a fresh process, as a user starts it)."""
    command = [sys.executable, "-m", "upscale", "image", str(frames_in), "-o", str(frames_out), "--model", model,
               "--format", "jpg", "--quality", str(quality), "--overwrite", "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"upscale image failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model spec, as for upscale image --model")
    parser.add_argument("--size", default="320x180", help="input frame size WxH")
    parser.add_argument("--frames", type=int, default=200, help="frames in the long folder")
    parser.add_argument("--short", type=int, default=20, help="frames in the short folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--source", type=Path, default=SAMPLE, help="picture to pan across")
    parser.add_argument("--device", default="cpu", help="as for upscale image --device")
    parser.add_argument("--precision", default="auto", help="as for upscale image --precision")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--record", action="store_true", help="keep the figure in the model folder and its card")
    args = parser.parse_args()
    extra = ["--device", args.device, "--precision", args.precision]
    width, height = (int(v) for v in args.size.lower().split("x"))
    if not 0 < args.short < args.frames:
        raise SystemExit("--short must be between 0 and --frames")
    source = cv2.imread(str(args.source), cv2.IMREAD_COLOR)
    if source is None:
        raise SystemExit(f"cannot read {args.source}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = pan_frames(source, width, height, args.frames)
        write_folder(tmp / "long", frames)
        write_folder(tmp / "short", frames[:args.short])
        run_command(args.model, tmp / "short", tmp / "warm", args.quality, extra)  # page cache, pyc
        rounds = []
        for _ in range(args.rounds):
            short = run_command(args.model, tmp / "short", tmp / "out-short", args.quality, extra)
            long = run_command(args.model, tmp / "long", tmp / "out-long", args.quality, extra)
            rounds.append({"short_s": short, "long_s": long,
                           "fps": (args.frames - args.short) / max(long - short, 1e-9)})
        out_size = cv2.imread(str(next((tmp / "out-long").glob("*.jpg")))).shape

    fps = [r["fps"] for r in rounds]
    median_fps = statistics.median(fps)
    startup = statistics.median(r["short_s"] - args.short / r["fps"] for r in rounds)
    result = {"model": args.model, "input": f"{width}x{height}", "output": f"{out_size[1]}x{out_size[0]}",
              "frames": args.frames, "short": args.short, "rounds": rounds, "fps": median_fps,
              "ms_per_frame": 1000 / median_fps, "startup_s": startup,
              "command": "python benchmarks/frame_folder_fps.py " + " ".join(sys.argv[1:])}
    print(f"{args.model}: {width}x{height} PNG -> {out_size[1]}x{out_size[0]} JPEG, `upscale image` over a folder")
    for i, r in enumerate(rounds):
        print(f"  round {i + 1}: {args.short} frames {r['short_s']:.2f} s, {args.frames} frames {r['long_s']:.2f} s"
              f" -> {r['fps']:.1f} frames/s")
    print(f"median {median_fps:.1f} frames/s ({1000 / median_fps:.1f} ms a frame; spread {min(fps):.1f}-"
          f"{max(fps):.1f}), start-up excluded (about {startup:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.record:
        record(args, result, rounds)


def record(args: argparse.Namespace, result: dict, rounds: list[dict]) -> None:
    from upscale.engine import pick_device, pick_dtype
    from upscale.models import load
    from upscale.records import record_speed, speed_entry

    device = pick_device(args.device)
    precision = str(pick_dtype(device, args.precision, load(args.model).supports_half)).replace("torch.", "")
    command = " ".join(a for a in result["command"].split() if a != "--record")
    entry = speed_entry("end to end", device, precision, result["input"], result["output"],
                        result["ms_per_frame"], command, spread_fps=[round(min(r["fps"] for r in rounds), 1),
                                                                     round(max(r["fps"] for r in rounds), 1)])
    print(f"recorded in {record_speed(args.model, entry) / 'config.json'} and its card")


if __name__ == "__main__":
    main()
