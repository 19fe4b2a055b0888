"""What the video pipeline costs beyond the model: frames/s of the engine alone and of `upscale_video` on the
same frames with the same model, measured in one run, in interleaved rounds (so a busy machine slows both
alike), with medians and their ratio. A third figure, the pipeline with pixel repetition in place of the
network, is the ceiling that decoding and encoding alone allow.

    python benchmarks/video_throughput.py                       # a tiny random x2 model, 320x180, 96 frames
    python benchmarks/video_throughput.py --model trinas-x2 --size 640x360 --frames 120 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from upscale.engine import Upscaler
from upscale.video import VideoOptions, upscale_video


def pattern(i: int, width: int, height: int) -> np.ndarray:
    """A moving colour gradient with some texture, so the encoder has real work to do."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 3 + i * 4) % 256
    img[..., 1] = (y * 5 + i * 2) % 256
    img[..., 2] = ((x ^ y) + i * 7) % 256
    return img


def make_clip(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    """Near-lossless H.264 video with a sine AAC track: what a user would feed the pipeline."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "10", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = 48000 * len(frames) // fps
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for k in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.repeat(tone[None, k:k + 1024], 2, axis=0), format="fltp",
                                               layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, k, Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))


def engine_alone(upscaler: Upscaler, batches: list[torch.Tensor]) -> float:
    """Seconds for run_tensor over every batch: the model and its tiling, nothing else."""
    start = time.perf_counter()
    for x in batches:
        upscaler.run_tensor(x)
    if upscaler.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


class Repeat:
    """A stand-in engine that repeats pixels: what the pipeline alone (decode, convert, encode, mux) can do."""

    channels = 3

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def run_tensor(self, x: torch.Tensor, on_tile=None) -> torch.Tensor:
        return x.repeat_interleave(self.scale, dim=2).repeat_interleave(self.scale, dim=3)


def tiny_model(folder: Path) -> str:
    """The test suite's tiny x2 network (width 8, one cell), randomly initialised: a fast, valid model."""
    from trinas.export import save_model
    from trinas.net import TriNet
    from trinas.space import baseline_genotype

    torch.manual_seed(0)
    save_model(TriNet(baseline_genotype(2, width=8, cells=1)), folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model spec [default: the tests' tiny random x2 model]")
    parser.add_argument("--size", default="320x180", help="input frame size WxH [default: 320x180]")
    parser.add_argument("--frames", type=int, default=96, help="frames per measurement [default: 96]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tile", default="0", help="tile side, 0 (whole frames) or auto [default: 0]")
    parser.add_argument("--batch", type=int, default=4, help="frames per engine call, both sides [default: 4]")
    parser.add_argument("--codec", default=None, help="pipeline encoder [default: the CLI's, libx264 crf 18]")
    parser.add_argument("--preset", default=None, help="pipeline encoder preset [default: the encoder's]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds [default: 3]")
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = args.model or tiny_model(tmp / "tiny-x2")
        tile = args.tile if args.tile == "auto" else int(args.tile)
        upscaler = Upscaler.from_pretrained(spec, device=args.device, tile=tile)
        frames = [pattern(i, width, height) for i in range(args.frames)]
        clip = tmp / "clip.mkv"
        make_clip(clip, frames)
        batches = [torch.from_numpy(np.stack(frames[i:i + args.batch])).permute(0, 3, 1, 2).float().div_(255)
                   for i in range(0, len(frames), args.batch)]
        options = VideoOptions(codec=args.codec, preset=args.preset, batch=args.batch, overwrite=True)

        engine_alone(upscaler, batches[:2])  # warm-up: allocator, kernels, thread pools
        engine_fps, pipeline_fps, ceiling_fps = [], [], []
        for _ in range(args.rounds):
            engine_fps.append(len(frames) / engine_alone(upscaler, batches))
            for engine, into in ((upscaler, pipeline_fps), (Repeat(upscaler.scale), ceiling_fps)):
                start = time.perf_counter()
                report = upscale_video(clip, tmp / "out.mkv", engine, options)
                into.append(report.frames / (time.perf_counter() - start))
                assert report.frames == len(frames), report

    engine, pipeline = statistics.median(engine_fps), statistics.median(pipeline_fps)
    name = args.model or "tiny random x2 (width 8, 1 cell)"
    print(f"model {name} x{upscaler.scale} on {upscaler.device} ({torch.get_num_threads()} threads), "
          f"{width}x{height} -> {width * upscaler.scale}x{height * upscaler.scale}, {len(frames)} frames, "
          f"batch {args.batch}, tile {args.tile}, encoder {args.codec or 'libx264'} "
          f"(preset {args.preset or 'default'}, crf {'default' if args.codec else 18})")
    print(f"engine alone : {engine:8.1f} frames/s   rounds: {', '.join(f'{v:.1f}' for v in engine_fps)}")
    print(f"video pipeline: {pipeline:8.1f} frames/s   rounds: {', '.join(f'{v:.1f}' for v in pipeline_fps)}")
    ceiling = statistics.median(ceiling_fps)
    print(f"pipeline, no model: {ceiling:6.1f} frames/s   rounds: {', '.join(f'{v:.1f}' for v in ceiling_fps)}"
          "   (pixel repeat instead of the network: decode + convert + encode + mux)")
    print(f"pipeline / engine: {pipeline / engine:.2f}")


if __name__ == "__main__":
    main()
