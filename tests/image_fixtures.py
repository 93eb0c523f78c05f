"""Fixtures for the image tests: a tiny Stable Diffusion pipeline built in code (once per
session), a LoRA for it, and the IPython shell with it registered as ``tiny-img``.

Import with ``from image_fixtures import *`` (pytest only loads ``conftest.py`` by itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["img_ip", "run_image_example", "tiny_image_dir", "tiny_lora"]

EMBEDDED_IMAGE = Path(__file__).parent.parent / "genmagic" / "models" / "tiny-image" / "model_index.json"


@pytest.fixture(scope="session")
def tiny_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genmagic.testing import build_tiny_image_pipeline

    return build_tiny_image_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def write_lora(folder: Path, pipeline_dir: Path, seed: int = 0, scale: float = 0.3) -> Path:
    """A UNet LoRA with random (non-zero) weights, saved the diffusers way."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet: Any = UNet2DConditionModel.from_pretrained(pipeline_dir / "unet")
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.mul_(scale)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory: pytest.TempPathFactory, tiny_image_dir: Path) -> Path:
    return write_lora(tmp_path_factory.mktemp("lora") / "tiny-lora", tiny_image_dir)


@pytest.fixture
def img_ip(ip: Any, tiny_image_dir: Path) -> Any:
    """The lead's ``ip`` shell, plus the tiny pipeline registered as ``tiny-img``."""
    ip.run_line_magic("genmagic", f"register tiny-img {tiny_image_dir}")
    import genmagic

    genmagic._magics.default_image_model = ""
    yield ip
    for name in [k for k in ip.user_ns if k.startswith("i_")]:
        del ip.user_ns[name]


def run_image_example(name: str, tiny_image_dir: Path) -> Any:
    """Execute ``examples/NAME`` headless (nbclient, widget state stored) and return the notebook.
    Until the embedded model is built, a project ``genmagic.toml`` points ``tiny-image`` at the tiny pipeline."""
    import nbformat
    from nbclient import NotebookClient

    if not EMBEDDED_IMAGE.exists():
        Path("genmagic.toml").write_text(f'[models.tiny-image]\nsource = "{tiny_image_dir}"\n')
    nb = nbformat.read(Path(__file__).parent.parent / "examples" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(Path.cwd())}}).execute()
    return nb
