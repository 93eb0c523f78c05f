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


def write_text_lora(folder: Path, base: Path, seed: int) -> Path:
    """A LoRA for the tiny GPT-2 with random, non-zero weights, saved the peft way."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True,
                        init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(3.0)
    peft_model.save_pretrained(folder)
    return folder


def peft_reference(base: Path, adapters: list[tuple[Path, float]], prompt: str, tokens: int) -> str:
    """Greedy text from peft directly: both adapters loaded and active, scaled, merged."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    names = [f"a{i}" for i in range(len(adapters))]
    peft_model = PeftModel.from_pretrained(model, adapters[0][0], adapter_name=names[0])
    for name, (path, _) in zip(names[1:], adapters[1:], strict=True):
        peft_model.load_adapter(path, adapter_name=name)
    peft_model.base_model.set_adapter(names)
    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            for name, (_, scale) in zip(names, adapters, strict=True):
                module.set_scale(name, scale)
    merged = peft_model.merge_and_unload().eval()
    ids = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = merged.generate(**ids, max_new_tokens=tokens, do_sample=False, repetition_penalty=1.0,
                              pad_token_id=tok.eos_token_id)
    return str(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))


def test_two_text_adapters_are_both_active_with_their_scales(ip: Any, tiny_text_dir: Path, tmp_path: Path) -> None:
    # Two folders with the same basename: their adapter names must not collide.
    first = write_text_lora(tmp_path / "a" / "lora", tiny_text_dir, seed=1)
    second = write_text_lora(tmp_path / "b" / "lora", tiny_text_dir, seed=2)
    greedy = "--raw --temperature 0 --repetition-penalty 1 --max-new-tokens 12 --no-cache"
    prompt = "Once upon a time"
    run(ip, f"%genmagic register one {tiny_text_dir} --adapter {first}")
    run(ip, f"%genmagic register two {tiny_text_dir} --adapter {second}")
    run(ip, f"%genmagic register both {tiny_text_dir} --adapter {first} --adapter {second}:0.5")
    texts = {name: run(ip, f"%%generate -m {name} {greedy}\n{prompt}").text for name in ("tiny", "one", "two", "both")}
    assert len(set(texts.values())) == 4, texts
    assert texts["both"] == peft_reference(tiny_text_dir, [(first, 1.0), (second, 0.5)], prompt, 12)
    run(ip, f"%genmagic register full {tiny_text_dir} --adapter {first} --adapter {second}")
    assert run(ip, f"%%generate -m full {greedy}\n{prompt}").request.fingerprint != \
        run(ip, f"%%generate -m both {greedy}\n{prompt}").request.fingerprint  # the scale is in the key


def test_unload_by_any_alias_and_memory_once_per_model(ip: Any, tiny_text_dir: Path,
                                                       capsys: Any) -> None:
    Path("genmagic.toml").write_text(
        f'[models.story]\nsource = "{tiny_text_dir}"\n\n[models.tale]\nsource = "{tiny_text_dir}"\n'
    )
    run(ip, "%%generate -m story --seed 1 --max-new-tokens 3\nHi")
    table = run(ip, "%genmagic models")
    rows = {row[0].rstrip("*"): row for row in table.rows}
    assert rows["story"][5] == rows["tale"][5] == rows["tiny"][5] == "yes"
    memory = [rows[name][6] for name in ("story", "tale", "tiny")]
    assert sum(cell.endswith(" MB") for cell in memory) == 1, memory
    assert rows["story"][6].endswith(" MB") and rows["tale"][6] == rows["tiny"][6] == "(as story)"
    capsys.readouterr()
    run(ip, "%genmagic unload tale")
    assert "unloaded: story" in capsys.readouterr().out
    assert engine().models.is_loaded(engine().registry.resolve("story", "text")) is None


def test_alias_with_a_missing_source_names_alias_file_and_path(ip: Any) -> None:
    import pytest
    from IPython.core.error import UsageError

    Path("genmagic.toml").write_text('[models.typo]\nsource = "./models/not-copied-yet"\n')
    missing = str(Path.cwd() / "models" / "not-copied-yet")
    with pytest.raises(UsageError) as err:
        run(ip, "%%generate -m typo --seed 1\nHi")
    message = str(err.value)
    assert "'typo'" in message and str(Path.cwd() / "genmagic.toml") in message and missing in message
    assert "no backend named" not in message


def test_kind_mismatch_reads_an_image_model(ip: Any) -> None:
    import pytest
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"'tiny-image' is an image model, not a text model; pick a text model"):
        run(ip, "%%generate -m tiny-image\nHi")


def test_two_loads_of_one_model_are_counted_together(ip: Any) -> None:
    run(ip, "%genmagic unload")
    run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 2 --no-cache\nHi")
    run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 2 --dtype bfloat16 --no-cache\nHi")
    loads = [item.nbytes for item in engine().models.loaded()]
    assert len(loads) == 2
    memory = engine().models.memory_by_alias(engine().registry.specs())
    assert memory["tiny"] == f"{sum(loads) / 2**20:.1f} MB (2 loads)"


def test_fingerprint_follows_a_symlinked_sub_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared-unet"
    shared.mkdir()
    (shared / "diffusion_pytorch_model.safetensors").write_bytes(b"a" * 1000)
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "model_index.json").write_text("{}")
    (pipe / "unet").symlink_to(shared, target_is_directory=True)
    (shared / "loop").symlink_to(pipe, target_is_directory=True)  # a loop is walked once
    before = dir_fingerprint(pipe)
    time.sleep(0.01)
    (shared / "diffusion_pytorch_model.safetensors").write_bytes(b"b" * 1000)
    assert dir_fingerprint(pipe) != before


def test_fingerprint_covers_remote_code_and_tokenizer_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    for name in ("modeling_custom.py", "tokenizer.tiktoken", "scheduler.yaml", "weights.pth"):
        file = tmp_path / name
        file.write_text("one")
        before = dir_fingerprint(tmp_path)
        time.sleep(0.01)
        file.write_text("two")
        assert dir_fingerprint(tmp_path) != before, name


def test_fingerprint_sees_a_same_size_same_mtime_change(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    data = bytearray(os.urandom(6 << 20))
    weights.write_bytes(bytes(data))
    stat = weights.stat()
    before = dir_fingerprint(tmp_path)
    data[3 << 20] ^= 0xFF  # as `cp -p` / `rsync -a` of a same-sized file: size and mtime kept
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    from genmagic.registry import _dir_fingerprint

    _dir_fingerprint.cache_clear()  # a new process
    assert dir_fingerprint(tmp_path) != before
