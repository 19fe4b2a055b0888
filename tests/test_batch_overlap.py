"""A folder of images runs at the model's pace: the next file is read and the previous output written while the
model works, and the outcome (outputs, failures, their order) is what a one-at-a-time run gives."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

import upscale.batch as batch
from upscale.batch import Job, run_jobs
from upscale.images import read_image


class Doubling:
    """A stand-in model: pixel repetition, with a hook on each call."""

    scale = 2

    def __init__(self, on_call=None) -> None:
        self.calls = 0
        self.on_call = on_call

    def upscale_array(self, pixels, outscale=None, on_tile=None):
        self.calls += 1
        if self.on_call:
            self.on_call(self.calls)
        return pixels.repeat(2, axis=0).repeat(2, axis=1)


def make_jobs(tmp_path, count=4, broken=()):
    jobs = []
    for i in range(count):
        source = tmp_path / "in" / f"f{i}.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        if i in broken:
            source.write_bytes(b"not a png")
        else:
            Image.fromarray(np.full((6, 8, 3), 30 * i, np.uint8)).save(source)
        jobs.append(Job(source, tmp_path / "out" / f"f{i}.png"))
    return jobs


def test_the_model_runs_on_the_next_image_while_the_previous_is_written(tmp_path, monkeypatch):
    second_upscale_started = threading.Event()
    overlapped = []
    real_write = batch.write_image

    def slow_write(path, pixels, **kwargs):
        if path.name == "f0.png":  # hold the first write until the model has started on the second image
            overlapped.append(second_upscale_started.wait(timeout=3))
        real_write(path, pixels, **kwargs)

    monkeypatch.setattr(batch, "write_image", slow_write)
    model = Doubling(on_call=lambda n: second_upscale_started.set() if n == 2 else None)
    report = run_jobs(make_jobs(tmp_path, 3), model)
    assert overlapped == [True]  # one at a time, the first write would have waited in vain
    assert [job.target.name for job in report.done] == ["f0.png", "f1.png", "f2.png"] and not report.failures
    assert read_image(tmp_path / "out" / "f1.png").pixels.shape == (12, 16, 3)


def test_failures_and_order_are_those_of_one_at_a_time_and_large_outputs_are_not_overlapped(tmp_path, monkeypatch):
    outcomes = {}
    for overlap_max in (batch.OVERLAP_MAX_BYTES, 0):  # 0: every output counts as large, nothing overlaps
        monkeypatch.setattr(batch, "OVERLAP_MAX_BYTES", overlap_max)
        done_order = []
        jobs = make_jobs(tmp_path / str(overlap_max), 5, broken={1, 3})
        report = run_jobs(jobs, Doubling(), on_done=lambda job, error: done_order.append((job.source.name, bool(error))))
        outcomes[overlap_max] = (done_order, [f.error.split(":")[-1] for f in report.failures],
                                 sorted(p.name for p in (tmp_path / str(overlap_max) / "out").iterdir()))
    overlapped, sequential = outcomes.values()
    assert overlapped == sequential
    assert overlapped[0] == [("f0.png", False), ("f1.png", True), ("f2.png", False), ("f3.png", True),
                             ("f4.png", False)]
    assert overlapped[2] == ["f0.png", "f2.png", "f4.png"]  # no temporary files left behind


def test_a_failing_write_is_reported_for_its_own_file(tmp_path, monkeypatch):
    jobs = make_jobs(tmp_path, 3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f1.png").mkdir()  # a folder where the output should go
    report = run_jobs(jobs, Doubling())
    assert [job.source.name for job in report.done] == ["f0.png", "f2.png"]
    assert len(report.failures) == 1 and "f1.png" in report.failures[0].error
