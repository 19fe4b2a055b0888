"""Pure tile geometry: which input window each tile reads and which output region it owns.

A tile owns a core region of the input; it reads that core plus `pad` pixels of context on each side
(clipped at the image border, where the network's own zero padding applies as it would on the whole
image). With `pad` >= the model's receptive field, the stitched output equals the whole-image output. The
engine cuts images this way, and the latency model predicts frame times over the same tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where a latency budget can hold (`trinas.latency.Device.current`); here, not in the latency module, so the
# command line and the search config name them without importing the timing machinery (and scipy) at start-up.
LATENCY_DEVICES = ("cpu", "cpu-bf16", "cuda")
CPU_TILE = 256  # the engine's tile side on the CPU, the fastest measured with `upscale bench --tiles 0,128,192,256,384`


@dataclass(frozen=True)
class Tile:
    """Input rows/cols [top, bottom) x [left, right) owned by this tile, and the window read around them."""

    top: int
    bottom: int
    left: int
    right: int
    read_top: int
    read_bottom: int
    read_left: int
    read_right: int


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into nearly equal spans no longer than `tile` (no thin sliver at the end)."""
    count = max(1, -(-length // tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def engine_tile(device_kind: str, height: int, width: int, tile: int | None = None) -> int:
    """The tile side the engine uses for a height x width input on a device kind unless told otherwise (`tile`):
    CPU_TILE on the CPU, or the whole input where it is no larger than one tile (`whole_if_one_tile`); whole
    frames (0) on a GPU (whose tiles the engine sizes from free memory, far above a video frame)."""
    if tile is not None:
        return tile
    return whole_if_one_tile(height, width, CPU_TILE) if device_kind.startswith("cpu") else 0


def whole_if_one_tile(height: int, width: int, tile: int) -> int:
    """`tile`, or 0 (the whole input) where the input's area is at most one tile's. Cut at 256, a 320x180 input
    is two tiles, the second mostly context: it ran at 0.88-0.92x the speed of the whole on our 2-core CPU
    (the first `trinas-x4-rt`, `trinas-x2`), while 640x360 ran faster tiled and 480x270 went either way
    (`benchmarks/results/bench-tiles-small-inputs-2026-12-03.txt`). No more memory than a tile's."""
    return 0 if tile > 0 and height * width <= tile * tile else tile


def plan_tiles(height: int, width: int, tile: int, pad: int) -> list[Tile]:
    """Tiles covering a height x width input in row-major order; `tile` <= 0 means one tile."""
    if tile <= 0:
        tile = max(height, width)
    tiles = []
    for top, bottom in _spans(height, tile):
        for left, right in _spans(width, tile):
            tiles.append(Tile(top, bottom, left, right, max(0, top - pad), min(height, bottom + pad),
                              max(0, left - pad), min(width, right + pad)))
    return tiles


def tile_shapes(height: int, width: int, tile: int, pad: int) -> list[tuple[int, int]]:
    """The input size (with context) of every tile of a height x width input."""
    return [(t.read_bottom - t.read_top, t.read_right - t.read_left) for t in plan_tiles(height, width, tile, pad)]


def frame_tiles(device_kind: str, out_height: int, out_width: int, scale: int, pad: int,
                tile: int | None = None) -> list[tuple[int, int]]:
    """The input size (with `pad` of context) of every tile the engine cuts for one out_height x out_width output
    frame at `scale` on a device kind (`tile` overrides the engine's side): what one frame costs, tile by tile."""
    height, width = out_height // scale, out_width // scale
    return tile_shapes(height, width, engine_tile(device_kind, height, width, tile), pad)
