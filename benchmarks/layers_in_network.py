"""Where do layer times stop adding up? Each module's time inside the whole network against its layers' times alone.

The latency table predicts a frame as the sum of its layers, each timed alone on one reused input
(`trinas.latency`); a network may run slower or faster than that sum (session 24 found a width-16 network at
0.79x its sum, and that session 23's suspicion of width 20 was wrong). This times every module of a folded network
(the head, each cell or upsampler, the tail; the skip and shuffle are what remains) inside the network, over
the tiles the engine cuts one output frame into, and sets each beside the table's raw sum of its layers:

    python benchmarks/layers_in_network.py --model trinas-x3 --model jobs/x3-s/model --frame 1280x720

Module times come from forward hooks (two clock reads per module, microseconds against milliseconds), each
module's fastest of `--rounds` frames; a ratio above 1 is time the network spends that its layers alone do
not. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from trinas.export import load_model
from trinas.latency import Device, LatencyTable, busy_warning, parts_of
from trinas.net import fold
from trinas.search_config import frame_size
from trinas.allocator import keep_freed_memory
from trinas.tiling import frame_tiles
from upscale.models import resolve


def module_times(net: torch.nn.Module, parts: list[str], tiles: list[tuple[int, int]], rounds: int) -> dict:
    """Milliseconds per frame of each named module inside `net` ("skip": the frame's time outside them), the
    fastest round of each, and "frame": the fastest whole frame."""
    modules = dict(net.named_modules())
    spent: dict[str, float] = {}
    started: dict[str, float] = {}
    hooks = []
    for name in parts:
        if name in modules:
            hooks.append(modules[name].register_forward_pre_hook(
                lambda _m, _x, name=name: started.__setitem__(name, time.perf_counter())))
            hooks.append(modules[name].register_forward_hook(
                lambda _m, _x, _y, name=name: spent.__setitem__(name, spent.get(name, 0.0)
                                                                + time.perf_counter() - started[name])))
    inputs = [torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last) for h, w in tiles]
    best: dict[str, float] = {}
    try:
        with torch.inference_mode():
            net(inputs[0])  # warm-up
            for _ in range(rounds):
                spent.clear()
                start = time.perf_counter()
                for x in inputs:
                    net(x)
                frame = time.perf_counter() - start
                spent["skip"] = frame - sum(spent.values())
                spent["frame"] = frame
                for name, seconds in spent.items():
                    best[name] = min(best.get(name, float("inf")), seconds * 1e3)
    finally:
        for hook in hooks:
            hook.remove()
    return best


def ratio(inside: float, alone: float) -> str:
    return f"{inside / alone:6.2f}" if alone > 0 else f"{'-':>6s}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="packaged name or model folder (repeatable)")
    parser.add_argument("--frame", default="1280x720", help="output frame, WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cache", type=Path, help="latency table folder [default: the user cache]")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the engine runs
    out_w, out_h = frame_size(args.frame)
    table = LatencyTable(Device.current("cpu", args.threads), args.cache)
    if busy := busy_warning(table.path):
        print(f"warning: {busy}")
    for spec in args.model:
        net = fold(load_model(resolve(spec))).eval().to(memory_format=torch.channels_last)
        genotype = net.genotype
        tiles = frame_tiles("cpu", out_h, out_w, genotype.scale, net.receptive_field)
        alone: dict[str, float] = {}
        described: dict[str, str] = {}
        for th, tw in tiles:
            for name, layers in parts_of(genotype, th, tw):
                alone[name] = alone.get(name, 0.0) + sum(table.raw_layer_ms(layer) for layer in layers)
                described[name] = " + ".join(layer.key.split("@")[0] for layer in layers)
        inside = module_times(net, list(alone), tiles, args.rounds)
        print(f"\n{spec}: {genotype.describe()}; {len(tiles)} tiles for a {args.frame} frame, {args.threads} threads")
        print(f"{'module':8s} {'alone':>8s} {'inside':>8s} {'ratio':>6s}  layers")
        for name in alone:
            print(f"{name:8s} {alone[name]:8.1f} {inside[name]:8.1f} {ratio(inside[name], alone[name])}  "
                  f"{described[name]}")
        total = sum(alone.values())
        print(f"{'frame':8s} {total:8.1f} {inside['frame']:8.1f} {ratio(inside['frame'], total)}  (modules' fastest "
              f"rounds add to {sum(v for k, v in inside.items() if k != 'frame'):.1f})")
    table.save()


if __name__ == "__main__":
    main()
