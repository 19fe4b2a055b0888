"""The short report a search leaves beside its model: the architecture as a picture, the curves, the numbers.

Drawn with PIL alone (no plotting library): `architecture.png`, `curves.png` and `report.md`.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .space import Cell, Genotype

INK, GRID, PAPER = (30, 30, 30), (225, 225, 225), (255, 255, 255)
LEVEL_COLOURS = {"network": (31, 119, 180), "cell": (255, 127, 14), "kernel": (44, 160, 44)}
RESOLUTION_COLOURS = [(222, 235, 247), (253, 228, 204), (229, 245, 224), (239, 225, 242)]


def _font():
    """Pillow's bundled scalable font: at its default size 10 it swallows the spaces between words."""
    return ImageFont.load_default(size=12)


def _text_size(draw: ImageDraw.ImageDraw, text: str) -> tuple[int, int]:
    box = draw.multiline_textbbox((0, 0), text, font=_font())
    return box[2] - box[0], box[3] - box[1]


def draw_architecture(genotype: Genotype, path: Path) -> None:
    """Boxes left to right (wrapping): head, cells with their ops and widths, upsamplers, tail, bicubic skip
    (or, with a shuffle tail, the repeated input and the shuffle); each resolution in its own colour."""
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes: list[tuple[str, int]] = [(f"input\n{genotype.channels} ch", -1), (f"head conv3x3\n-> {genotype.width}", 0)]
    level = 0
    for step in genotype.path:
        if isinstance(step, Cell):
            lines = [f"{op} -> {w}" for op, w in zip(step.ops, step.widths)]
            boxes.append(("cell (+ residual)\n" + "\n".join(lines), level))
        else:
            boxes.append((f"upsample x{step.factor}\nconv + shuffle", level))
            level += 1
    if genotype.tail == "shuffle":
        s2 = genotype.scale**2
        boxes += [(f"tail conv3x3\n-> {genotype.channels} x {s2}", level),
                  (f"+ input repeated x {s2}\nshuffle x{genotype.scale}: output", -1)]
    else:
        boxes += [(f"tail conv3x3\n-> {genotype.channels}", level), (f"+ bicubic x{genotype.scale}\noutput", -1)]
    sizes = [_text_size(scratch, text) for text, _ in boxes]
    box_w = max(w for w, _ in sizes) + 16
    box_h = max(h for _, h in sizes) + 16
    per_row = max(1, min(len(boxes), 6))
    rows = math.ceil(len(boxes) / per_row)
    gap, margin, title_h = 28, 16, 24
    width = margin * 2 + per_row * box_w + (per_row - 1) * gap
    height = margin * 2 + title_h + rows * box_h + (rows - 1) * gap
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((margin, margin), f"x{genotype.scale} TriNet, trunk width {genotype.width}: {len(genotype.cells)} "
                                f"cells", fill=INK, font=_font())
    centres = []
    for i, (text, res) in enumerate(boxes):
        row, col = divmod(i, per_row)
        x = margin + col * (box_w + gap)
        y = margin + title_h + row * (box_h + gap)
        fill = PAPER if res < 0 else RESOLUTION_COLOURS[res % len(RESOLUTION_COLOURS)]
        draw.rounded_rectangle([x, y, x + box_w, y + box_h], radius=6, fill=fill, outline=INK)
        draw.multiline_text((x + 8, y + 8), text, fill=INK, font=_font())
        centres.append((x, y))
    for (x0, y0), (x1, y1) in zip(centres, centres[1:]):
        if y0 == y1:
            draw.line([x0 + box_w, y0 + box_h // 2, x1, y1 + box_h // 2], fill=INK, width=2)
            draw.polygon([(x1, y1 + box_h // 2), (x1 - 7, y1 + box_h // 2 - 4), (x1 - 7, y1 + box_h // 2 + 4)],
                         fill=INK)
        else:  # wrap to the next row
            draw.line([x0 + box_w // 2, y0 + box_h, x0 + box_w // 2, y0 + box_h + gap // 2,
                       x1 + box_w // 2, y0 + box_h + gap // 2, x1 + box_w // 2, y1], fill=INK, width=2)
    image.save(path)


def _plot(draw: ImageDraw.ImageDraw, area: tuple[int, int, int, int], title: str,
          series: dict[str, tuple[list[float], list[float], tuple[int, int, int]]],
          y_range: tuple[float, float] | None = None) -> None:
    """Lines in a box with axes, a few ticks, a title and a legend (points that are not finite numbers left out)."""
    left, top, right, bottom = area
    series = {name: ([x for x, y in zip(sx, sy) if math.isfinite(y)], [y for y in sy if math.isfinite(y)], colour)
              for name, (sx, sy, colour) in series.items()}
    draw.text((left, top - 18), title, fill=INK, font=_font())
    draw.rectangle(area, outline=INK)
    xs = [x for data in series.values() for x in data[0]]
    ys = [y for data in series.values() for y in data[1]]
    if not xs:
        draw.text((left + 10, top + 10), "no data", fill=INK, font=_font())
        return
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = y_range or (min(ys), max(ys))
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        _, py = at(x0, y)
        draw.line([left, py, right, py], fill=GRID)
        draw.text((left - 48, py - 7), f"{y:.2f}", fill=INK, font=_font())
        x = x0 + (x1 - x0) * i / 4
        px, _ = at(x, y0)
        label = f"{x:.0f}" if x1 - x0 >= 8 else f"{x:.1f}"
        draw.text((px - _text_size(draw, label)[0] / 2, bottom + 4), label, fill=INK, font=_font())
    legend_x = right - 10 - max(_text_size(draw, name)[0] for name in series)
    for n, (name, (sx, sy, colour)) in enumerate(series.items()):
        points = [at(x, y) for x, y in zip(sx, sy)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points[-1:] if len(points) > 1 else points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        line_y = top + 14 + 16 * n
        draw.line([legend_x - 26, line_y, legend_x - 6, line_y], fill=colour, width=3)
        draw.text((legend_x, line_y - 7), name, fill=INK, font=_font())


def draw_curves(history: list[dict], path: Path, bicubic_psnr: float | None = None,
                budgets: dict[str, float] | None = None) -> None:
    """Validation PSNR (top), each level's mean normalised entropy with the radius (middle), and each budget's
    expected cost over the budget (bottom; 1 is on budget: a swinging line shows an unsettled search), over
    minutes.

    Minutes, not steps: the derived network takes ~10x more steps per minute than the supernet, so on a step
    axis the search itself would shrink to a sliver at the left."""
    image = Image.new("RGB", (720, 800), PAPER)
    draw = ImageDraw.Draw(image)
    val = [(r["seconds"] / 60, r["val_psnr"]) for r in history if r.get("val_psnr") is not None]
    series = {"validation PSNR (dB)": ([s for s, _ in val], [v for _, v in val], (214, 39, 40))}
    if bicubic_psnr is not None and val:
        series["bicubic"] = ([val[0][0], val[-1][0]], [bicubic_psnr, bicubic_psnr], (150, 150, 150))
    _plot(draw, (70, 40, 680, 250), "validation PSNR", series)
    minutes = [r["seconds"] / 60 for r in history]
    entropy = {f"{level} entropy": (minutes, [r["entropy"][level] for r in history], colour)
               for level, colour in LEVEL_COLOURS.items()}
    entropy["radius"] = (minutes, [r["radius"] for r in history], (120, 120, 120))
    _plot(draw, (70, 310, 680, 520), "architecture distributions: normalised entropy, and the radius", entropy,
          (0.0, 1.0))
    searching = [r for r in history if r.get("phase") == "search"]
    ratios = {f"{key} / budget": ([r["seconds"] / 60 for r in searching],
                                  [r[f"expected_{key}"] / limit for r in searching], colour)
              for (key, limit), colour in zip((budgets or {}).items(), ((31, 119, 180), (255, 127, 14)))
              if all(f"expected_{key}" in r for r in searching)}
    _plot(draw, (70, 580, 680, 760), "expected cost over the budget, while searching", ratios)
    draw.text((350, 780), "minutes", fill=INK, font=_font())
    image.save(path)


def draw_training_curve(history: list[dict], path: Path) -> None:
    """Validation PSNR over the steps of a training run (`trinas.train`), with the training loss beneath it:
    the curve a model card shows to say whether more steps would still pay."""
    image = Image.new("RGB", (720, 560), PAPER)
    draw = ImageDraw.Draw(image)
    val = [(r["step"], r["val_psnr"]) for r in history if r.get("val_psnr") is not None]
    _plot(draw, (70, 40, 680, 250), "validation PSNR (dB)",
          {"validation PSNR": ([s for s, _ in val], [v for _, v in val], (214, 39, 40))})
    loss = [(r["step"], r["loss"]) for r in history if r.get("loss") is not None]
    _plot(draw, (70, 310, 680, 520), "training loss (mean since the previous point)",
          {"loss": ([s for s, _ in loss], [v for _, v in loss], (31, 119, 180))})
    draw.text((350, 540), "steps", fill=INK, font=_font())
    image.save(path)


def write_report(result) -> list[str]:
    """curves.png and report.md in the result's folder (beside the architecture.png that `save_model` drew);
    returns the names of the three."""
    out = Path(result.out)
    genotype = result.genotype
    bicubic = [m["bicubic_psnr"] for m in result.metrics.values()]
    budgets = {"madds": result.budget_madds} if result.budget_madds else {}
    draw_curves(result.history, out / "curves.png", sum(bicubic) / len(bicubic) if bicubic else None, budgets)
    budget = f"{result.budget_madds:,.0f}" if result.budget_madds else "none"
    if result.budget_madds and result.madds_per_output_pixel > result.budget_madds:
        budget += ": **over budget**"
    lines = ["# Search report", "", f"`{genotype.describe()}`", "", "![architecture](architecture.png)", "",
             "| | |", "|---|---|", f"| scale | x{genotype.scale} |", f"| parameters | {result.params:,} |",
             f"| multiply-adds per output pixel | {result.madds_per_output_pixel:,.0f} (budget {budget}) |",
             *([f"| predicted time per {result.latency.at} frame on {result.latency.device} | "
                f"{result.latency.ms:,.1f} ms (budget {result.latency.budget_ms:,.1f}) |"] if result.latency else []),
             f"| steps | {result.steps:,} |", f"| time | {result.seconds / 60:.1f} min |", "",
             "| validation set | PSNR (dB) | SSIM | bicubic PSNR | bicubic SSIM |", "|---|---|---|---|---|"]
    for name, m in result.metrics.items():
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['bicubic_psnr']:.2f} | "
                     f"{m['bicubic_ssim']:.4f} |")
    lines += ["", "![curves](curves.png)", "",
              "Entropy is the mean normalised entropy of each level's distributions (1 uniform, 0 one-hot); "
              "the network switched to the derived TriNet when all of them reached 0.", ""]
    (out / "report.md").write_text("\n".join(lines))
    return ["architecture.png", "curves.png", "report.md"]
