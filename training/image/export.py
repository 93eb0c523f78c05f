"""Export the latest training checkpoint as a standard diffusers pipeline folder.

    python training/image/export.py [--out genmagic/models/tiny-image] [--raw]

Uses the EMA weights by default.  UNet and VAE weights are stored as float16
safetensors (diffusers loads them as float32 unless ``torch_dtype`` is given);
the text encoder is stored in float32 so that all components load with the same
dtype by default.  Only model files are replaced; README.md / samples.png in the
output folder are left alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
from common import RUNS, UNET_CONFIG, make_scheduler, text_config

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "genmagic", "models", "tiny-image")
COMPONENTS = ["unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"]


def build_pipeline(ckpt_path, vae_dir, tok_dir, raw=False, scheduler="dpm"):
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import AutoTokenizer, CLIPTextModel

    sd = torch.load(ckpt_path, map_location="cpu")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text = CLIPTextModel(text_config(tokenizer))
    if raw:
        unet.load_state_dict(sd["unet"]); text.load_state_dict(sd["text"])
    else:
        unet.load_state_dict(sd["ema"][0]); text.load_state_dict(sd["ema"][1])
    vae = AutoencoderKL.from_pretrained(vae_dir)
    if scheduler == "dpm":
        sch = make_scheduler(DPMSolverMultistepScheduler, algorithm_type="dpmsolver++",
                             solver_order=2, final_sigmas_type="zero")
    else:
        sch = make_scheduler(DDIMScheduler)
    # Also record the settings other schedulers need, so that
    # ``XScheduler.from_config(pipe.scheduler.config)`` works for swaps: DDIM's
    # default clip_sample=True would clip the (std 1) latents, PNDM should skip PRK.
    # Keys belonging to compatible schedulers are ignored silently by the loader.
    import inspect
    own = inspect.signature(type(sch).__init__).parameters
    extra = {k: v for k, v in dict(clip_sample=False, set_alpha_to_one=True, skip_prk_steps=True).items()
             if k not in own}
    sch.register_to_config(**extra)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text.eval(), tokenizer=tokenizer,
                                   unet=unet.eval(), scheduler=sch, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    init = (sd.get("config", {}).get("args", {}) or {}).get("init")  # the run it was warm-started from
    return pipe, sd["step"], sd["elapsed"], init


def default_vae():
    """The decoder-fine-tuned VAE if there is one, else the stage-1 VAE."""
    dec = os.path.join(RUNS, "vae_dec", "vae")
    return dec if os.path.isdir(dec) else os.path.join(RUNS, "vae", "vae")


def export(out=DEFAULT_OUT, ckpt=None, raw=False, scheduler="dpm", fp16=True, vae=None):
    ckpt = ckpt or os.path.join(RUNS, "unet", "last.pt")
    vae = vae or default_vae()
    print(f"vae: {vae}")
    # the tokenizer saved next to the checkpoint by train_unet.py
    pipe, step, elapsed, init = build_pipeline(ckpt, vae,
                                               os.path.join(os.path.dirname(ckpt), "tokenizer"), raw, scheduler)
    if fp16:
        pipe.unet.to(torch.float16)
        pipe.vae.to(torch.float16)
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out)), prefix=".export-")
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        for c in COMPONENTS:
            dst = os.path.join(out, c)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
            shutil.move(os.path.join(tmp, c), dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Record the tokenizer under its transformers-4 compatible name (in transformers 5
    # PreTrainedTokenizerFast is an alias of TokenizersBackend), so that the folder
    # loads with either major version.
    for path, key in [(os.path.join(out, "model_index.json"), None),
                      (os.path.join(out, "tokenizer", "tokenizer_config.json"), "tokenizer_class")]:
        with open(path) as f:
            cfg = json.load(f)
        if key is None:
            cfg["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
        else:
            cfg[key] = "PreTrainedTokenizerFast"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    # no absolute paths of this machine in the shipped configs
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    for comp in ("unet", "vae", "text_encoder"):
        path = os.path.join(out, comp, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        name = cfg.get("_name_or_path")
        if isinstance(name, str) and os.path.isabs(name):
            cfg["_name_or_path"] = os.path.relpath(name, repo)
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)
                f.write("\n")
    with open(os.path.join(out, "training_state.txt"), "w") as f:
        f.write(f"step {step}\ntraining_minutes {elapsed/60:.1f}\nweights {'raw' if raw else 'ema'}\n")
        if init:
            f.write(f"warm_start_from {init}\n")
    print(f"exported step {step} ({elapsed/60:.1f} min) to {out}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--raw", action="store_true", help="export raw instead of EMA weights")
    ap.add_argument("--scheduler", default="dpm", choices=["dpm", "ddim"])
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--vae", default=None, help="VAE folder (default: runs/vae_dec/vae if present, "
                                                "else runs/vae/vae)")
    a = ap.parse_args()
    sys.exit(0 if export(a.out, a.ckpt, a.raw, a.scheduler, not a.fp32, a.vae) else 1)
