import platform
import subprocess
import sys

import pytest

from trinas import allocator
from trinas.latency import Device

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _state_in_fresh_process(env_value: str | None) -> str:
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["TRINAS_MALLOC"] = env_value
    code = ("from trinas.allocator import keep_freed_memory, allocator_name; "
            "before = allocator_name(); keep_freed_memory(); print(before, allocator_name())")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.skipif(not ON_GLIBC, reason="the settings are glibc's")
def test_freed_memory_is_kept_on_glibc_unless_turned_off():
    assert _state_in_fresh_process(None) == ["default", "glibc-kept"]
    assert _state_in_fresh_process("default") == ["default", "default"]


def test_the_engine_and_the_latency_table_run_with_the_same_allocator(monkeypatch):
    from upscale.engine import Upscaler
    from trinas.net import TriNet
    from trinas.space import baseline_genotype

    calls = []
    monkeypatch.setattr("upscale.engine.keep_freed_memory", lambda: calls.append("engine"))
    Upscaler(TriNet(baseline_genotype(2, width=8, cells=1)), device="cpu", tile=0)
    assert calls == ["engine"]
    # Tables timed under another allocator are other tables.
    kept = Device("cpu", 2, False, "test cpu", allocator="glibc-kept")
    default = Device("cpu", 2, False, "test cpu", allocator="default")
    assert kept.key != default.key
    assert Device.current("cpu", 2).allocator == allocator.allocator_name()
    assert allocator.allocator_name() == ("glibc-kept" if allocator.keep_freed_memory() else "default")
