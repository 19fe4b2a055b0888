import platform
import subprocess
import sys

import pytest

from trinas import allocator
from trinas.latency import Device

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _state_in_fresh_process(env_value: str | None, **more: str) -> str:
    env = {"PATH": "/usr/bin:/bin", **more}
    if env_value is not None:
        env["TRINAS_MALLOC"] = env_value
    code = ("from trinas.allocator import keep_freed_memory, allocator_name; "
            "before = allocator_name(); keep_freed_memory(); print(before, allocator_name())")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.skipif(not ON_GLIBC, reason="the settings are glibc's")
def test_freed_memory_is_kept_on_glibc_unless_turned_off():
    assert _state_in_fresh_process(None) == ["default+thp", "glibc-kept+thp"]
    assert _state_in_fresh_process("default") == ["default", "default"]


@pytest.mark.skipif(not ON_GLIBC, reason="huge pages for PyTorch's tensors are a Linux setting")
def test_huge_pages_are_asked_for_unless_the_user_chose():
    """`import trinas` asks PyTorch for huge pages (before its first allocation); a user's own choice stands,
    and the probe reads what is really in force (a tensor allocated before the import keeps them off)."""
    assert _state_in_fresh_process(None, THP_MEM_ALLOC_ENABLE="0") == ["default", "glibc-kept"]
    late = ("import torch; torch.ones(4); from trinas.allocator import allocator_name, keep_freed_memory; "
            "keep_freed_memory(); print(allocator_name())")
    done = subprocess.run([sys.executable, "-c", late], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["glibc-kept"]


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
    assert allocator.allocator_name().split("+")[0] == ("glibc-kept" if allocator.keep_freed_memory() else "default")
