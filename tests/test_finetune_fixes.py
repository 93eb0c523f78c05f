"""Regressions from the %%finetune review: LoRA targets, BOS parity between training and
generation, an interrupt during evaluation, alias overwrites, merged folders, image data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genmagic.errors import OptionError
from genmagic.tuning.options import FinetuneOptions

pytest.importorskip("peft")


def lora_layers(model: Any) -> set[str]:
    return {name.removeprefix("base_model.model.") for name, m in model.named_modules() if hasattr(m, "lora_A")}


def wrapped(folder: Path, **options: Any) -> tuple[set[str], list[str]]:
    from genmagic.tuning import train_text

    model, _ = train_text.load_base(str(folder), "cpu")
    peft_model, shown = train_text.wrap_lora(model, FinetuneOptions(base=str(folder), **options))
    return lora_layers(peft_model), shown


def test_default_targets_are_the_attention_projections_only(tiny_text_dir: Path) -> None:
    layers, shown = wrapped(tiny_text_dir)
    # GPT-2's MLP output layer is also called c_proj: it must not get a LoRA
    assert layers == {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj"}
    assert shown == ["attn.c_attn", "attn.c_proj"]


def test_target_modules_take_a_dotted_suffix(tiny_text_dir: Path) -> None:
    layers, shown = wrapped(tiny_text_dir, target_modules=("attn.c_proj",))
    assert layers == {"transformer.h.0.attn.c_proj"} and shown == ["attn.c_proj"]
    layers, _ = wrapped(tiny_text_dir, target_modules=("c_proj",))  # a bare name still means every c_proj
    assert layers == {"transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj"}
    with pytest.raises(OptionError, match=r"--target-modules mlp\.q_proj: no such linear layer"):
        wrapped(tiny_text_dir, target_modules=("mlp.q_proj",))
