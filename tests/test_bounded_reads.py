"""Files whose size we do not control are read only up to a bound: a config, a model card, a latency table,
a genotype, a frames manifest. Over it, a clear refusal (or, for a cache or a card, a fresh start), and nothing
past the bound is read."""

from __future__ import annotations

import json

import pytest

from trinas.files import FileTooLarge, read_bounded


def test_a_file_is_read_up_to_its_bound_and_refused_past_it(tmp_path):
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 10)
    assert read_bounded(exact, 10) == b"x" * 10
    with pytest.raises(FileTooLarge, match="larger than 9 bytes"):
        read_bounded(exact, 9)
    with pytest.raises(FileTooLarge):  # a file system size of 0 and no end: the bound, not the size, decides
        read_bounded("/dev/zero", 1000)


def test_an_oversized_latency_table_is_timed_afresh(tmp_path, monkeypatch):
    from trinas import latency

    device = latency.Device("cpu", 1, False, "test cpu")
    table = latency.LatencyTable(device, tmp_path)
    table.entries = {"op:conv3x3,8,8@8x8": 1.0}
    table.save()
    assert latency.LatencyTable(device, tmp_path).entries == table.entries
    monkeypatch.setattr(latency, "MAX_TABLE_BYTES", 10)
    assert latency.LatencyTable(device, tmp_path).entries == {}


def test_an_oversized_or_binary_model_card_gives_way_to_one_made_from_the_config(tmp_path, monkeypatch):
    from tests.conftest import make_tiny_model
    from trinas.export import CARD
    from upscale import models

    folder = make_tiny_model(tmp_path / "m")
    (folder / CARD).write_text("# a card of our own\n")
    assert models.describe(str(folder))[2] == "# a card of our own\n"
    monkeypatch.setattr(models, "MAX_CARD_BYTES", 5)
    assert "# m" in models.describe(str(folder))[2]  # the card made from config.json, named after the folder
    monkeypatch.undo()
    (folder / CARD).write_bytes(b"\xff\xfe not text")
    assert "# m" in models.describe(str(folder))[2]


def test_a_genotype_file_that_is_not_one_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from trinas import train

    monkeypatch.setattr(train, "MAX_GENOTYPE_BYTES", 100)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"scale": 2, "width": 8, "path": [], "padding": "x" * 200}))
    (tmp_path / "m").mkdir()
    for path, says in ((big, "larger than 100 bytes"), (tmp_path / "none.json", "No such file"),
                       (tmp_path / "m", "not a model folder")):
        with pytest.raises(SystemExit) as stopped:
            train.main(["--scale", "2", "--train", str(tmp_path), "--work", str(tmp_path / "w"), "--genotype",
                        str(path), "--steps", "1"])
        assert stopped.value.code == 2 and says in capsys.readouterr().err


def test_an_oversized_frames_manifest_is_refused_as_damaged(tmp_path, monkeypatch):
    from upscale import video
    from upscale.video_types import VideoError

    manifest = tmp_path / video.FRAMES_MANIFEST
    manifest.write_text(json.dumps({"settings": "x" * 100}))
    monkeypatch.setattr(video, "MAX_FRAMES_MANIFEST", 50)
    with pytest.raises(VideoError, match="damaged"):
        video._frames_to_resume(tmp_path, manifest, {})
