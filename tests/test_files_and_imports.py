"""Files genmagic writes get the user's usual permissions; a cache hit in a new process does
not import torch (the request key holds the device, which is known without it here)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from genmagic.results import write_atomic


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "a.png", b"x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0600
        os.umask(0o077)
        assert stat.S_IMODE(write_atomic(tmp_path / "b.png", b"x").stat().st_mode) == 0o600
    finally:
        os.umask(old)


CACHED_RUN = """
import sys, genmagic
result = genmagic.generate("Once upon a time", seed=3, max_new_tokens=4)
print(result.cached, "torch" in sys.modules)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")),
    reason="the torch-free device answer is for Linux machines without a GPU driver",
)
def test_a_cache_hit_in_a_new_process_does_not_import_torch() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, "-c", CACHED_RUN], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split() == ["False", "True"]
    second = subprocess.run([sys.executable, "-c", CACHED_RUN], capture_output=True, text=True, env=env, check=True)
    assert second.stdout.split() == ["True", "False"]
