"""Image LoRA: a UNet LoRA on the attention projections (``to_q``, ``to_k``, ``to_v``,
``to_out.0``), trained the way diffusers' ``train_text_to_image_lora.py`` does (frozen VAE and
text encoder, noise at random timesteps, MSE on the scheduler's prediction target), saved with
``save_lora_weights`` (``pytorch_lora_weights.safetensors``) so the image backend loads it as the
alias's adapter.

Images come from a folder (``metadata.jsonl``/``metadata.csv`` with ``file_name`` and the
``--captions`` column, or a ``NAME.txt`` caption beside each image, or ``--captions FILE`` with one
caption per line in sorted file order) or a variable (a DataFrame with an ``image`` column and the
``--captions`` column, a list of ``(image, caption)`` pairs, or a list of images with ``--captions
FILE``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import OptionError
from . import card as cards
from .live import TrainingView, interrupt_stops
from .options import FinetuneControls, FinetuneOptions
from .result import FinetuneResult

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
WEIGHTS = "pytorch_lora_weights.safetensors"


def _caption_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_pairs(options: FinetuneOptions, namespace: Mapping[str, Any] | None) -> list[tuple[Any, str]]:
    """``(PIL image, caption)`` pairs from ``--images`` and ``--captions``."""
    from PIL import Image

    source, captions = options.images, options.captions
    if source is None:
        raise OptionError("--captions needs --images DIR|VAR (the pictures to learn)")
    if namespace is not None and source.isidentifier() and source in namespace:
        value = namespace[source]
        if hasattr(value, "columns"):
            column = captions or "caption"
            if "image" not in value.columns or column not in value.columns:
                raise OptionError(f"--images {source}: needs an 'image' column and --captions {column}; its columns "
                                  f"are {', '.join(map(str, value.columns))}")
            pairs = list(zip(value["image"], value[column]))
        elif captions and os.path.isfile(captions):
            pairs = list(zip(value, _caption_lines(captions)))
        else:
            pairs = [tuple(item) for item in value if isinstance(item, (tuple, list)) and len(item) == 2]
            if len(pairs) != len(value):
                raise OptionError(f"--images {source}: give (image, caption) pairs, a DataFrame with an 'image' "
                                  "column, or images with --captions FILE (in Python: captions=[...])")
    elif os.path.isdir(source):
        files = sorted(f for f in os.listdir(source) if f.lower().endswith(IMAGE_SUFFIXES))
        meta = _metadata(source, captions or "text")
        if captions and os.path.isfile(captions):
            texts = _caption_lines(captions)
            if len(texts) != len(files):
                raise OptionError(f"--captions {captions}: {len(texts)} captions for {len(files)} images in {source}")
            meta = dict(zip(files, texts))
        pairs = []
        for name in files:
            stem_txt = os.path.join(source, os.path.splitext(name)[0] + ".txt")
            caption = meta.get(name) or (Path(stem_txt).read_text(encoding="utf-8").strip()
                                         if os.path.isfile(stem_txt) else None)
            if caption is None:
                raise OptionError(f"--images {source}: no caption for {name}; add metadata.jsonl (file_name, "
                                  f"{captions or 'text'}), {os.path.splitext(name)[0]}.txt, or --captions FILE")
            pairs.append((os.path.join(source, name), caption))
    else:
        raise OptionError(f"--images {source}: no such folder or variable")
    out = []
    for image, caption in pairs:
        picture = Image.open(image) if isinstance(image, str) else image
        if not hasattr(picture, "convert"):
            raise OptionError(f"--images {source}: {type(image).__name__} is not an image")
        out.append((picture.convert("RGB"), str(caption)))
    if not out:
        raise OptionError(f"--images {source}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return out


def _metadata(folder: str, column: str) -> dict[str, str]:
    jsonl, csv = os.path.join(folder, "metadata.jsonl"), os.path.join(folder, "metadata.csv")
    rows: list[dict[str, Any]] = []
    if os.path.isfile(jsonl):
        with open(jsonl, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif os.path.isfile(csv):
        import csv as csvlib

        with open(csv, encoding="utf-8", newline="") as f:
            rows = list(csvlib.DictReader(f))
    if rows and column not in rows[0]:
        raise OptionError(f"--captions {column}: no such column in {folder}'s metadata; its columns are "
                          f"{', '.join(rows[0])}")
    return {str(r.get("file_name")): str(r[column]) for r in rows if r.get("file_name")}


def scan_captions(pairs: list[tuple[Any, str]], options: FinetuneOptions, controls: FinetuneControls,
                  engine: Any) -> tuple[list[tuple[Any, str]], Any]:
    """The PII scan of the captions, as of text data (refused, redacted, allowed or reported)."""
    from . import pii_scan

    as_text = dataclasses.replace(options, text_column="caption")
    rows = [{"caption": caption} for _, caption in pairs]
    report = pii_scan.scan(rows, "text", as_text, engine.level(controls.safety))
    redaction = engine.registry.safety_setting("redaction") or "placeholder"
    rows = pii_scan.apply_policy(rows, "text", as_text, report, allow=controls.allow_pii, redaction=str(redaction))
    return [(image, row["caption"]) for (image, _), row in zip(pairs, rows)], report


def data_fingerprint(pairs: list[tuple[Any, str]], size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    for image, caption in pairs:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        h.update(hashlib.sha256(buf.getvalue()).digest())
        h.update(caption.encode() + b"\n")
    return h.hexdigest()[:16]


def run_image(name: str, options: FinetuneOptions, controls: FinetuneControls, *,
              namespace: Mapping[str, Any] | None, engine: Any, view: TrainingView) -> FinetuneResult:
    try:
        return _run_image(name, options, controls, namespace, engine, view)
    except BaseException as err:
        view.close("interrupted" if isinstance(err, KeyboardInterrupt) else "")
        raise


def _run_image(name: str, options: FinetuneOptions, controls: FinetuneControls,
               namespace: Mapping[str, Any] | None, engine: Any, view: TrainingView) -> FinetuneResult:
    import torch

    from ..backends import default_device, seeded
    from ..backends._hub import require_folder
    from ..registry import get_backend
    from .train_text import plan_steps

    if controls.merge:
        raise OptionError("--merge: an image LoRA is not merged into a model folder; leave out --merge "
                          f"(%imagine -m {name} loads the base with the adapter)")
    base = engine.registry.resolve("tiny-image" if options.base == "tiny-text" else options.base, "image")
    cards.check_name(name, base, engine.registry, replace=controls.overwrite)
    options = dataclasses.replace(options, base=base.alias)
    folder = require_folder(base.source, "model_index.json", base.hub_revision)
    pairs, report = scan_captions(load_pairs(options, namespace), options, controls, engine)
    view.message(report.summary())
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    from ..backends import quiet_progress_bars

    with quiet_progress_bars("diffusers", "transformers"):
        pipe: Any = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = options.resolution or int(pipe.unet.config.sample_size) * scale
    view.message(f"{len(pairs)} images from {options.images} at {size}x{size}")

    base_fp = get_backend(base.backend).fingerprint(dataclasses.replace(base, adapters=()))
    data_fp = data_fingerprint(pairs, size)
    fp_options = cards.fingerprint_options(options, image=True)
    fingerprint = cards.run_fingerprint(base_fp, data_fp, fp_options)
    out_dir = cards.adapter_dir(name)
    saved = None if controls.retrain else cards.reusable(out_dir, fingerprint, WEIGHTS)
    if saved is not None:
        cards.register(engine.registry, name, base, out_dir)
        view.close(f"{name}: the saved adapter has the same data, options and seed; reused it (--retrain trains again)")
        return FinetuneResult(name=name, adapter=out_dir, card=saved, reused=True)

    device = controls.device or default_device()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(device) if dtype == torch.float32 else module.to(device, dtype=dtype)
    pixels = torch.stack([_to_tensor(image, size) for image, _ in pairs]).to(device, dtype=dtype)
    ids = tokenizer([c for _, c in pairs], padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    total = plan_steps(options, len(pairs))
    losses: list[tuple[int, float]] = []
    stopped = False
    started = time.perf_counter()
    with seeded(options.seed, device):
        from peft import LoraConfig

        targets = list(options.target_modules) or UNET_TARGETS
        unet.add_adapter(LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                                    init_lora_weights="gaussian", target_modules=targets))
        params = [p for p in unet.parameters() if p.requires_grad]
        for p in params:  # train the LoRA weights in float32 (diffusers' cast_training_params)
            p.data = p.data.float()
        optimizer = torch.optim.AdamW(params, lr=options.lr)
        generator = torch.Generator().manual_seed(options.seed)
        with torch.no_grad():
            hidden = text_encoder(ids)[0]
            latents_all = vae.encode(pixels).latent_dist.sample(generator=None) * vae.config.scaling_factor
        view.begin(total)
        unet.train()
        with interrupt_stops(view):
            for step in range(1, total + 1):
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for _ in range(options.grad_accum):
                    idx = torch.randint(0, len(pairs), (min(options.batch_size, len(pairs)),), generator=generator)
                    latents = latents_all[idx]
                    noise = torch.randn(latents.shape, generator=generator).to(device, dtype=dtype)
                    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),),
                                      generator=generator).to(device)
                    noisy = noise_scheduler.add_noise(latents, noise, t)
                    target = noise if noise_scheduler.config.prediction_type == "epsilon" else \
                        noise_scheduler.get_velocity(latents, noise, t)
                    pred = unet(noisy, t, hidden[idx]).sample
                    loss = torch.nn.functional.mse_loss(pred.float(), target.float()) / options.grad_accum
                    loss.backward()
                    step_loss += float(loss.detach())
                optimizer.step()
                losses.append((step, step_loss))
                view.step(step, step_loss, None)
                if view.stopped and step < total:
                    stopped = True
                    break
    unet.eval()
    seconds = time.perf_counter() - started
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    metrics = {"steps": len(losses), "planned_steps": total, "train_examples": len(pairs),
               "final_loss": losses[-1][1] if losses else None, "seconds": round(seconds, 2), "device": device,
               "target_modules": targets}
    card = cards.make_card(name=name, base=base, base_fingerprint=base_fp, data_fingerprint=data_fp,
                           fingerprint=fingerprint, options=fp_options, metrics=metrics, stopped=stopped,
                           data={"source": str(options.images), "images": len(pairs), "resolution": size,
                                 "pii": report.to_dict()})
    cards.save_adapter(lambda tmp: StableDiffusionPipeline.save_lora_weights(
        str(tmp), unet_lora_layers=layers, safe_serialization=True), out_dir, card)
    cards.register(engine.registry, name, base, out_dir)
    result = FinetuneResult(name=name, adapter=out_dir, card=card, stopped=view.reason if stopped else "",
                            losses=losses, pii=report.summary())
    view.close(result.summary())
    return result


def _to_tensor(image: Any, size: int) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    picture = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(picture, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)
