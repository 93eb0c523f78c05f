"""Cache and model identity: what a loaded model and a cached answer are keyed by."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conftest import run

import genmagic
from genmagic.registry import dir_fingerprint


def engine() -> Any:
    return genmagic._magics.engine


def perturb_middle_tensor(folder: Path) -> None:
    """Re-save ``model.safetensors`` in place, same size, one tensor in the middle changed."""
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    size = path.stat().st_size
    weights = load_file(path)
    names = sorted(weights)
    middle = names[len(names) // 2]
    gen = torch.Generator().manual_seed(1)
    weights[middle] = weights[middle] + torch.randn(weights[middle].shape, generator=gen)
    time.sleep(0.01)  # a later save, as in any training loop (mtimes have ms granularity)
    save_file(weights, path, metadata={"format": "pt"})
    assert path.stat().st_size == size


def test_resaved_folder_is_reloaded_without_unload(ip: Any, tmp_path: Path) -> None:
    from genmagic.testing import build_tiny_text_model

    folder = build_tiny_text_model(tmp_path / "my-model")
    os.chdir(tmp_path)
    cell = "%%generate -m ./my-model --seed 3 --max-new-tokens 12 --temperature 1 --repetition-penalty 1\nOnce"
    first = run(ip, cell)
    perturb_middle_tensor(folder)
    second = run(ip, cell)
    assert not second.cached
    assert second.request.fingerprint != first.request.fingerprint
    assert second.texts != first.texts
    fresh = run(ip, cell.replace("--seed 3", "--seed 3 --no-cache"))
    assert fresh.texts == second.texts  # what the new weights give
    same = [item for item in engine().models.loaded() if item.spec.source == str(folder)]
    assert len(same) == 1  # the stale copy was dropped


def test_fingerprint_sees_a_change_in_the_middle_of_a_big_file(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    data = bytearray(os.urandom(6 << 20))
    weights.write_bytes(bytes(data))
    before = dir_fingerprint(tmp_path)
    data[3 << 20] ^= 0xFF
    time.sleep(0.01)
    weights.write_bytes(bytes(data))
    assert dir_fingerprint(tmp_path) != before


def test_hub_snapshot_fingerprint_is_its_commit(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert dir_fingerprint(snapshot) == "hub-" + commit
    (snapshot / "config.json").write_text('{"a": 1}')  # snapshots are immutable: named by commit
    assert dir_fingerprint(snapshot) == "hub-" + commit


def test_old_history_rows_still_read(ip: Any) -> None:
    from genmagic.request import Request

    old = {"kind": "text", "prompt": "p", "model": "m", "revision": "abc", "options": {"seed": 1},
           "messages": [], "inputs": {}}
    assert Request.from_dict(old).fingerprint == "abc"


def test_cached_from_names_the_original_run(ip: Any) -> None:
    cell = "%%generate -m tiny --seed 4 --max-new-tokens 6\nHi"
    original = run(ip, cell)
    again = run(ip, cell)
    third = run(ip, cell)
    assert not original.cached and again.cached and third.cached
    assert again.timings["cached_from"] == third.timings["cached_from"] == original.history_id
    hit = engine().history.lookup(original.request.key())
    assert hit is not None and hit.id == original.history_id and not hit.cached


def test_a_model_that_fails_to_load_leaves_an_error_row(ip: Any, tmp_path: Path) -> None:
    import pytest

    from genmagic.testing import build_tiny_text_model

    folder = build_tiny_text_model(tmp_path / "broken")
    run(ip, f"%genmagic register broken {folder}")
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    before = engine().history.count()
    with pytest.raises(Exception) as err:
        run(ip, "%%generate -m broken --seed 1 --max-new-tokens 4\nHi")
    assert engine().history.count() == before + 1
    row = engine().history.list(n=1)[0]
    assert row.status == "error" and row.model == "broken"
    assert row.error and "\n" not in row.error and row.error == str(err.value)
    assert "cannot load 'broken'" in row.error
