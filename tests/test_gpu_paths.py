"""GPU readiness on a CPU-only machine: device and dtype choice, what enters the cache key,
model-cache eviction order, seeding, and the library settings a run must leave as it found them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

import genmagic
from genmagic import registry
from genmagic.backends import Loaded
from genmagic.modelcache import ModelCache
from genmagic.options import ImageOptions, TextOptions


def engine() -> Any:
    return genmagic._magics.engine


@pytest.fixture(scope="module", autouse=True)
def _unload_at_the_end() -> Any:
    """This module builds its own tiny pipeline (image_fixtures' session fixtures are per
    importing module): leave no model of it loaded for the modules after."""
    yield
    if getattr(genmagic, "_magics", None) is not None:
        engine().models.unload()


@pytest.fixture(scope="module")
def bf16_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT-2, saved in bfloat16 (its config says so, as for most recent LLMs)."""
    import torch
    from transformers import AutoModelForCausalLM

    from genmagic.testing import build_tiny_text_model

    folder = build_tiny_text_model(tmp_path_factory.mktemp("models") / "bf16", context=128)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_text_default_dtype_is_the_models_own(ip: Any, bf16_text_dir: Path) -> None:
    run(ip, f"%genmagic register bf16 {bf16_text_dir}")
    result = run(ip, "%%generate -m bf16 --seed 1 --max-new-tokens 6\nOnce")
    assert result.info["dtype"] == "bfloat16" and result.request.dtype == "bfloat16"
    assert result.request.device == "cpu"
    loaded = engine().models.is_loaded(engine().registry.resolve("bf16", "text"))
    assert next(loaded.model.model.parameters()).dtype.__repr__() == "torch.bfloat16"
    auto = run(ip, "%%generate -m bf16 --seed 1 --max-new-tokens 6 --dtype auto --no-cache\nOnce")
    assert auto.request.dtype == "bfloat16" and auto.texts == result.texts  # auto: the model's own dtype


def test_text_dtype_option_and_the_key(ip: Any) -> None:
    f32 = run(ip, "%%generate -m tiny --seed 2 --max-new-tokens 8\nOnce")
    bf16 = run(ip, "%%generate -m tiny --seed 2 --max-new-tokens 8 --dtype bfloat16 --device cpu\nOnce")
    assert f32.request.dtype == "float32" and bf16.request.dtype == "bfloat16"
    assert not bf16.cached and bf16.info["dtype"] == "bfloat16"
    assert f32.request.key() != bf16.request.key()


def test_resolved_device_and_dtype_enter_the_key(ip: Any, tiny_image_dir: Path) -> None:
    """A request left to the defaults resolves them: a CPU float32 answer cannot be served
    to the same request resolved on CUDA float16."""
    import dataclasses

    text = engine().request("text", "Hi", TextOptions(seed=1), model="tiny")
    assert (text.device, text.dtype) == ("cpu", "float32")
    assert dataclasses.replace(text, device="cuda", dtype="float16").key() != text.key()
    run(ip, f"%genmagic register tiny-img {tiny_image_dir}")
    image = engine().request("image", "a circle", ImageOptions(seed=1), model="tiny-img")
    assert (image.device, image.dtype) == ("cpu", "float32")
    assert dataclasses.replace(image, device="cuda", dtype="float16").key() != image.key()


def test_unusable_text_device_is_a_one_line_error(ip: Any) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is usable here")
    with pytest.raises(UsageError, match=r"--device cuda is not usable here .*; use --device cpu"):
        run(ip, "%%generate -m tiny --device cuda --seed 1 --max-new-tokens 3\nHi")


def test_seeded_generation_leaves_the_users_rng_alone(ip: Any) -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    run(ip, "%%generate -m tiny --seed 9 --max-new-tokens 5 --no-cache\nHi")
    assert torch.equal(torch.rand(1), expected)


class _Sized:
    """A backend whose models take ``size`` bytes; it records what was loaded when it loads."""

    kinds = ("text",)
    size = 600 * 1024
    seen: ClassVar[list[list[str]]] = []
    cache: ModelCache | None = None

    def detect(self, source: str) -> str | None:
        return "text" if source.startswith("sized:") else None

    def fingerprint(self, spec: Any) -> str:
        return "1"

    def load_key(self, spec: Any, options: Any) -> tuple[Any, ...]:
        return ()

    def estimate_bytes(self, spec: Any, options: Any) -> int:
        return self.size

    def load(self, spec: Any, options: Any) -> Loaded:
        assert self.cache is not None
        type(self).seen.append([item.spec.source for item in self.cache.loaded()])
        return Loaded(spec=spec, model=object(), nbytes=self.size)

    def unload(self, loaded: Loaded) -> None:
        loaded.model = None


def test_cache_evicts_before_loading_the_next_model() -> None:
    registry.register_backend("sized", _Sized)
    try:
        cache = ModelCache(budget_mb=1)
        _Sized.cache, _Sized.seen = cache, []
        specs = [registry.ModelSpec(alias=n, kind="text", backend="sized", source=f"sized:{n}") for n in "ab"]
        cache.get(specs[0], TextOptions())
        cache.get(specs[1], TextOptions())
        assert _Sized.seen == [[], []]  # a was unloaded before b loaded: never both in memory
        assert [item.spec.alias for item in cache.loaded()] == ["b"]
    finally:
        registry.unregister_backend("sized")


def test_runs_restore_progress_bar_settings(img_ip: Any) -> None:
    from diffusers.utils import logging as df_logging
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    def bars() -> tuple[bool, bool, bool]:
        return (df_logging.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled(),
                not hub_utils.are_progress_bars_disabled())

    engine().models.unload()
    before = bars()
    df_logging.enable_progress_bar()  # what a user has unless they switched them off
    hf_logging.enable_progress_bar()
    hub_utils.enable_progress_bars()
    try:
        run(img_ip, "%%imagine -m tiny-img --steps 2 --seed 1 --no-cache\na circle")
        assert bars() == (True, True, True)
        run(img_ip, "%%generate -m tiny --seed 1 --max-new-tokens 2 --dtype bfloat16 --no-cache\nHi")
        assert bars() == (True, True, True)
    finally:
        for enabled, off in zip(before, (df_logging.disable_progress_bar, hf_logging.disable_progress_bar,
                                         hub_utils.disable_progress_bars), strict=True):
            if not enabled:
                off()


def test_image_loras_a_run_no_longer_uses_are_unloaded(img_ip: Any, tiny_lora: Path, tiny_image_dir: Path,
                                                       tmp_path: Path) -> None:
    from image_fixtures import write_lora

    other = write_lora(tmp_path / "other", tiny_image_dir, seed=3)
    fast = "-m tiny-img --steps 2 --seed 1 --no-cache"
    run(img_ip, f"%%imagine {fast} --lora {tiny_lora}\na circle")
    second = run(img_ip, f"%%imagine {fast} --lora {other}\na circle")
    state = engine().models.is_loaded(engine().registry.resolve("tiny-img", "image")).model
    loaded = {name for names in state.pipe.get_list_adapters().values() for name in names}
    assert loaded == set(state.adapters.values()) and len(loaded) == 1
    again = run(img_ip, f"%%imagine {fast} --lora {other}\na circle")
    assert again.images[0].tobytes() == second.images[0].tobytes()
    run(img_ip, f"%%imagine {fast}\na circle")
    assert not state.pipe.get_list_adapters() or not any(state.pipe.get_list_adapters().values())


def test_wrong_scheduler_lists_the_a1111_names_too(img_ip: Any) -> None:
    with pytest.raises(UsageError) as err:
        run(img_ip, "%%imagine -m tiny-img --steps 2 --scheduler Nope\na circle")
    message = str(err.value)
    assert message.startswith("--scheduler Nope does not fit this model; compatible: ")
    assert "EulerDiscreteScheduler" in message and "'Euler a'" in message and "'DPM++ 2M'" in message


def test_an_evicted_model_is_freed_at_once(ip: Any, bf16_text_dir: Path) -> None:
    import gc
    import weakref

    models = engine().models
    models.unload()
    run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 2 --no-cache\nHi")
    module = weakref.ref(models.loaded()[0].model.model)
    budget = genmagic._magics.memory_budget_mb
    gc.disable()  # only the cache's own collection may free it
    try:
        genmagic._magics.memory_budget_mb = 0  # the next load evicts everything first
        run(ip, f"%genmagic register bf16 {bf16_text_dir}")
        run(ip, "%%generate -m bf16 --seed 1 --max-new-tokens 2 --no-cache\nHi")
        assert [item.spec.alias for item in models.loaded()] == ["bf16"]
        assert module() is None
    finally:
        genmagic._magics.memory_budget_mb = budget
        gc.enable()


def test_auto_dtype_without_one_in_the_config_is_the_checkpoints(ip: Any, bf16_text_dir: Path,
                                                                tmp_path: Path) -> None:
    import json
    import shutil

    from transformers import AutoModelForCausalLM

    folder = tmp_path / "no-dtype"
    shutil.copytree(bf16_text_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("dtype", None)
    config.pop("torch_dtype", None)
    (folder / "config.json").write_text(json.dumps(config))
    expected = str(AutoModelForCausalLM.from_pretrained(folder).dtype).removeprefix("torch.")
    assert expected == "bfloat16"  # what from_pretrained's default dtype="auto" gives
    run(ip, f"%genmagic register nodtype {folder}")
    result = run(ip, "%%generate -m nodtype --seed 1 --max-new-tokens 2 --dtype auto\nOnce")
    assert result.request.dtype == expected and result.info["dtype"] == expected


def test_the_same_lora_twice_is_a_one_line_error(img_ip: Any, tiny_lora: Path) -> None:
    with pytest.raises(UsageError) as err:
        run(img_ip, f"%%imagine -m tiny-img --steps 2 --seed 1 --no-cache --lora {tiny_lora}:0.5 --lora {tiny_lora}:1\nx")
    assert str(err.value) == (
        f"--lora {tiny_lora}:1: this LoRA is already given as --lora {tiny_lora}:0.5; "
        "give it once, with the scale you want (PATH:SCALE)"
    )


def test_seeded_generation_leaves_the_accelerators_rng_alone(ip: Any) -> None:
    import torch

    kind = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else None
    if kind is None:
        pytest.skip("no CUDA or MPS device here")
    module = getattr(torch, kind)
    module.manual_seed(0)
    state = module.get_rng_state()
    run(ip, f"%%generate -m tiny --device {kind} --seed 9 --max-new-tokens 5 --no-cache\nHi")
    assert torch.equal(module.get_rng_state(), state)
