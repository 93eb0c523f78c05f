"""Stage 2: train the text-conditioned UNet2DConditionModel (jointly with a small
CLIPTextModel trained from scratch) on VAE latents of procedural shapes.

    nice -n 19 env OMP_NUM_THREADS=1 python training/image/train_unet.py --minutes 75 [--resume]

Needs the stage-1 VAE in training/image/runs/vae/vae.  Checkpoints (raw + EMA
weights, optimizer, step, elapsed time) go to training/image/runs/unet/last.pt
every --save-every seconds; ``export.py`` turns the latest one into a pipeline
folder at any time.  The learning-rate schedule is time based (warm-up, then
cosine decay over --minutes), so a resumed run continues the same schedule.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import time

import torch
import torch.nn.functional as F
from common import (
    RUNS,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    build_tokenizer,
    image_batch,
    make_scheduler,
    set_threads,
    text_config,
    tokenize,
)
from shapes import ShapeGenerator


class EMA:
    def __init__(self, modules, decay=0.999):
        self.decay = decay
        self.shadow = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]

    @torch.no_grad()
    def update(self, modules, step):
        d = min(self.decay, (1 + step) / (10 + step))
        for sh, m in zip(self.shadow, modules):
            for k, v in m.state_dict().items():
                if v.dtype.is_floating_point:
                    sh[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    sh[k].copy_(v)


def fg_mask_latent(x):
    """(N,1,16,16) mask of latent pixels near non-background image pixels."""
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    bgc = border.median(dim=2).values[:, :, None, None]
    fg = ((x - bgc).abs().amax(1, keepdim=True) > 0.15).float()
    m = F.max_pool2d(fg, 4)
    return F.max_pool2d(m, 3, stride=1, padding=1)


def warm_start(run_dir, unet, text, tokenizer):
    """Load the EMA weights of another run; token embeddings are mapped by word."""
    from transformers import AutoTokenizer
    sd = torch.load(os.path.join(run_dir, "last.pt"), map_location="cpu")
    old_tok = AutoTokenizer.from_pretrained(os.path.join(run_dir, "tokenizer"))
    unet_sd, text_sd = sd["ema"]
    unet.load_state_dict(unet_sd)
    key = next(k for k in text.state_dict() if k.endswith("token_embedding.weight"))
    old_emb = text_sd[key]
    new_emb = text.state_dict()[key].clone()
    old_vocab = old_tok.get_vocab()
    kept = 0
    for word, i in tokenizer.get_vocab().items():
        if word in old_vocab:
            new_emb[i] = old_emb[old_vocab[word]]
            kept += 1
    text_sd = dict(text_sd, **{key: new_emb})
    text.load_state_dict(text_sd)
    print(f"warm start from {run_dir} (step {sd['step']}): {kept}/{len(tokenizer)} token "
          f"embeddings carried over", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=75.0, help="total training-time budget")
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--cfg-drop", type=float, default=0.1, help="caption dropout for CFG")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--save-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--vae", default=os.path.join(RUNS, "vae", "vae"))
    ap.add_argument("--out", default=os.path.join(RUNS, "unet"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--pool", type=int, default=2048, help="encoded-latent pool size")
    ap.add_argument("--fresh", type=int, default=8, help="new images encoded per step")
    ap.add_argument("--fg-weight", type=float, default=3.0, help="loss up-weighting of shape pixels")
    ap.add_argument("--init", default=None,
                    help="warm start from another run's folder (its last.pt EMA weights and "
                         "tokenizer/); token embeddings are carried over word by word, so the "
                         "vocabulary may change")
    ap.add_argument("--two-shapes", type=float, default=0.06,
                    help="fraction of training scenes with two shapes")
    ap.add_argument("--t-power", type=float, default=1.0,
                    help="timestep sampling t = T * u**p; p < 1 spends more steps at high "
                         "noise, where layout and shape are decided")
    args = ap.parse_args()
    set_threads()
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(os.path.join(args.out, "tokenizer"))
    vae = AutoencoderKL.from_pretrained(args.vae).eval().requires_grad_(False)
    sf = vae.config.scaling_factor
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text = CLIPTextModel(text_config(tokenizer))
    sched = make_scheduler(DDPMScheduler)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    step, elapsed = 0, 0.0
    ckpt = os.path.join(args.out, "last.pt")
    if args.init and not (args.resume and os.path.exists(ckpt)):
        warm_start(args.init, unet, text, tokenizer)
    ema = EMA([unet, text], args.ema)
    if args.resume and os.path.exists(ckpt):
        sd = torch.load(ckpt, map_location="cpu")
        unet.load_state_dict(sd["unet"]); text.load_state_dict(sd["text"])
        opt.load_state_dict(sd["opt"]); ema.shadow = sd["ema"]
        step, elapsed = sd["step"], sd["elapsed"]
        print(f"resumed at step {step}, {elapsed/60:.1f} min", flush=True)
    n_u = sum(p.numel() for p in unet.parameters())
    n_t = sum(p.numel() for p in text.parameters())
    print(f"unet {n_u/1e6:.2f}M text {n_t/1e6:.3f}M vae sf {sf:.4f}", flush=True)

    gen = ShapeGenerator(args.seed * 100003 + step, two_shape_prob=args.two_shapes)
    rng = random.Random(args.seed * 7 + step)
    budget = args.minutes * 60
    t0 = time.time() - elapsed
    last_save = time.time()

    def save():
        obj = {"unet": unet.state_dict(), "text": text.state_dict(), "opt": opt.state_dict(),
               "ema": ema.shadow, "step": step, "elapsed": time.time() - t0,
               "config": {"unet": UNET_CONFIG, "scheduler": SCHEDULER_CONFIG, "args": vars(args)}}
        torch.save(obj, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    run_loss = None
    pool_lat = pool_sd = pool_attrs = pool_fg = None
    unet.train(); text.train()
    while time.time() - t0 < budget:
        frac = min(1.0, (time.time() - t0) / budget)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        # Latent pool: encoding images with the VAE costs ~40 % of a UNet step, so
        # keep a pool of encoded images (with their attributes) and refresh only
        # --fresh of them per step; captions are re-drawn on every use.
        n_new = args.pool if pool_lat is None else args.fresh
        x, _, attrs = image_batch(gen, n_new)
        mus, sds = [], []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for xc in x.split(128):
                post = vae.encode(xc).latent_dist
                mus.append(post.mean.float()); sds.append(post.std.float())
        new_mu, new_sd = torch.cat(mus), torch.cat(sds)
        new_fg = fg_mask_latent(x)
        if pool_lat is None:
            pool_lat, pool_sd, pool_attrs, pool_fg = new_mu, new_sd, list(attrs), new_fg
        else:
            slots = torch.randperm(args.pool)[:n_new]
            pool_lat[slots], pool_sd[slots], pool_fg[slots] = new_mu, new_sd, new_fg
            for j, sl in enumerate(slots.tolist()):
                pool_attrs[sl] = attrs[j]
        idx = torch.randperm(args.pool)[:args.bs]
        lat = (pool_lat[idx] + pool_sd[idx] * torch.randn_like(pool_lat[idx])) * sf
        caps = [gen.caption(pool_attrs[i]) for i in idx.tolist()]
        caps = ["" if rng.random() < args.cfg_drop else c for c in caps]
        ids = tokenize(tokenizer, caps)
        noise = torch.randn_like(lat)
        T = sched.config.num_train_timesteps
        t = (torch.rand(lat.shape[0]) ** args.t_power * T).long().clamp(0, T - 1)
        noisy = sched.add_noise(lat, noise, t)
        target = sched.get_velocity(lat, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            emb = text(ids)[0]
            pred = unet(noisy, t, encoder_hidden_states=emb).sample
        # Foreground-weighted MSE: shapes cover few latent pixels; up-weighting them
        # focuses the small model on shape/colour (per-pixel optimum is unchanged).
        w = 1.0 + args.fg_weight * pool_fg[idx]
        w = w / w.mean(dim=(2, 3), keepdim=True)
        loss = (((pred.float() - target) ** 2) * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema.update([unet, text], step)
        run_loss = loss.item() if run_loss is None else 0.99 * run_loss + 0.01 * loss.item()
        if step % 25 == 0:
            el = time.time() - t0
            print(f"step {step} t={el/60:.1f}min loss {run_loss:.4f} lr {lr:.2e} "
                  f"{step*args.bs/max(el,1):.1f} img/s", flush=True)
        if time.time() - last_save > args.save_every:
            save(); last_save = time.time()
            print(f"saved step {step}", flush=True)
    save()
    print(f"done step {step}", flush=True)


if __name__ == "__main__":
    main()
