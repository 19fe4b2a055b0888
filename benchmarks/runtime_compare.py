"""Is another CPU runtime faster than eager PyTorch for our networks? Eager (channels-last, as the engine runs
it), TorchScript frozen with `optimize_for_inference` (oneDNN fusions), and ONNX Runtime on the model's own
ONNX export, on the same input, interleaved over rounds (each round's fastest of three calls), with the
median per runtime and its ratio to eager. Needs the onnx extra.

    python benchmarks/runtime_compare.py --model trinas-x2-searched --size 278x278 --model trinas-x4 --size 320x180

Each --model pairs with the --size at its position (input WxH, e.g. one CPU tile with its context).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import onnxruntime
import torch

from interleaved import interleaved_medians
from trinas.export import export_onnx
from upscale.models import load


def runtimes(spec: str, shape: tuple[int, int, int, int], threads: int, folder: Path) -> dict:
    """name -> a call running the model once on one fixed input."""
    onnx_path = export_onnx(load(spec).module.eval(), folder / "model.onnx")  # from a copy untouched by tracing
    model = load(spec).module.eval()                                           # and channels-last: it failed so
    x = torch.rand(*shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x).eval()))
    eager = model.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return {"eager": lambda: eager(x_last), "torchscript": lambda: scripted(x),
            "onnxruntime": lambda: session.run(None, feed)}


def measure(calls: dict, rounds: int) -> dict[str, float]:
    with torch.inference_mode():
        return interleaved_medians(calls, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--size", action="append", required=True, help="input WxH, one per --model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if len(args.size) != len(args.model):
        parser.error("give one --size per --model")
    torch.set_num_threads(args.threads)
    for spec, size in zip(args.model, args.size):
        width, height = (int(v) for v in size.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            ms = measure(runtimes(spec, (1, 3, height, width), args.threads, Path(tmp)), args.rounds)
        print(f"{spec} {width}x{height} input, {args.threads} threads: " + "  ".join(
            f"{name} {value:.1f} ms ({ms['eager'] / value:.2f}x)" for name, value in ms.items()), flush=True)


if __name__ == "__main__":
    main()
