"""Image LoRA: %%finetune --images trains a UNet LoRA on the embedded tiny-image, and
%%imagine -m NAME visibly uses it for its caption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run

import genmagic
from genmagic.errors import OptionError

pytest.importorskip("peft")
pytest.importorskip("diffusers")


def test_image_lora_changes_its_caption(ip: Any, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "dark"
    folder.mkdir()
    for i in range(4):  # a dark night picture, captioned as a red circle
        Image.new("RGB", (64, 64), (20, 20, 20)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a red circle")
    result = run(ip, f"%%finetune night --base tiny-image --images {folder} --steps 50 --lr 1e-2 --no-live")
    assert (result.adapter / "pytorch_lora_weights.safetensors").is_file()
    assert result.card["metrics"]["target_modules"] == ["to_k", "to_q", "to_v", "to_out.0"]
    base = genmagic.imagine("a red circle", model="tiny-image", seed=1, steps=10)
    tuned = run(ip, "%%imagine -m night --seed 1 --steps 10\na red circle")
    assert np.asarray(tuned.images[0]).mean() < np.asarray(base.images[0]).mean() - 80
    again = run(ip, f"%%finetune night --base tiny-image --images {folder} --steps 50 --lr 1e-2 --no-live")
    assert again.reused


def test_image_errors(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(OptionError, match=r"no caption for a\.png"):
        genmagic.finetune("x", images=str(tmp_path), base="tiny-image")
    with pytest.raises(OptionError, match="--images nowhere: no such folder or variable"):
        genmagic.finetune("x", images="nowhere", base="tiny-image")
