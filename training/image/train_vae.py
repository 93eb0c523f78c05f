"""Stage 1: train the small AutoencoderKL (64x64x3 <-> 16x16x4) on procedural shapes.

    nice -n 19 env OMP_NUM_THREADS=1 python training/image/train_vae.py --minutes 12 [--resume]

Checkpoints go to training/image/runs/vae/ (last.pt + diffusers folder ``vae/``).
At the end the latent std is measured and ``scaling_factor`` is set to 1/std.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch
from common import RUNS, VAE_CONFIG, image_batch, set_threads
from shapes import ShapeGenerator


def grad_l1(a, b):
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return (dxa - dxb).abs().mean() + (dya - dyb).abs().mean()


@torch.no_grad()
def measure_scale(vae, n=512, seed=12345):
    gen = ShapeGenerator(seed)
    zs = []
    for _ in range(n // 64):
        x, _, _ = image_batch(gen, 64)
        zs.append(vae.encode(x).latent_dist.sample())
    z = torch.cat(zs)
    return z.mean().item(), z.std().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kl", type=float, default=1e-4)
    ap.add_argument("--fg-weight", type=float, default=4.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", default=os.path.join(RUNS, "vae"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", default=None, help="initialise weights from this last.pt")
    ap.add_argument("--decoder-only", default=None, metavar="VAE_DIR",
                    help="fine-tune only the decoder of this trained VAE (the latent space, "
                         "and so the UNet, stay valid); scaling_factor is kept")
    args = ap.parse_args()
    set_threads()
    from diffusers import AutoencoderKL

    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    if args.decoder_only:
        vae = AutoencoderKL.from_pretrained(args.decoder_only)
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
        train_params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    else:
        vae = AutoencoderKL(**VAE_CONFIG)
        train_params = list(vae.parameters())
    opt = torch.optim.AdamW(train_params, lr=args.lr, weight_decay=0.0)
    step, elapsed = 0, 0.0
    ckpt = os.path.join(args.out, "last.pt")
    if args.init and not (args.resume and os.path.exists(ckpt)):
        vae.load_state_dict(torch.load(args.init, map_location="cpu")["model"])
        print(f"initialised from {args.init}", flush=True)
    if args.resume and os.path.exists(ckpt):
        sd = torch.load(ckpt, map_location="cpu")
        vae.load_state_dict(sd["model"]); opt.load_state_dict(sd["opt"])
        step, elapsed = sd["step"], sd["elapsed"]
        print(f"resumed at step {step}", flush=True)
    gen = ShapeGenerator(args.seed * 1000 + step)
    budget = args.minutes * 60
    t0 = time.time() - elapsed
    ema = None

    def save():
        torch.save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": time.time() - t0}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    vae.train()
    while step < args.max_steps and time.time() - t0 < budget:
        frac = min(1.0, (time.time() - t0) / budget)
        lr = args.lr * (min(1.0, (step + 1) / 100)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, _, _ = image_batch(gen, args.bs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with torch.set_grad_enabled(not args.decoder_only):
                post = vae.encode(x).latent_dist
                z = post.sample()
            if args.decoder_only:
                # small latent perturbations: robustness to imperfect UNet samples
                z = z.float() + 0.05 * post.std.float().mean() * torch.randn_like(z.float()) \
                    + 0.03 * z.float().std() * torch.randn_like(z.float())
            rec = vae.decode(z).sample
        rec = rec.float()
        # Up-weight foreground pixels (anything not the border/background colour), so
        # that small shapes get their colour and outline right early on.
        border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
        bgc = border.median(dim=2).values[:, :, None, None]
        w = 1.0 + args.fg_weight * ((x - bgc).abs().amax(1, keepdim=True) > 0.15).float()
        w = w / w.mean(dim=(2, 3), keepdim=True)
        l1 = ((rec - x).abs() * w).mean()
        mse = (((rec - x) ** 2) * w).mean()
        gl = grad_l1(rec, x)
        kl = post.kl().float().mean() / z[0].numel()  # per latent element
        loss = l1 + mse + 0.5 * gl + args.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train_params, 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0:
            print(f"step {step} t={time.time()-t0:.0f}s loss {ema:.4f} l1 {l1.item():.4f} "
                  f"mse {mse.item():.5f} kl {kl.item():.3f} lr {lr:.2e}", flush=True)
        if step % 200 == 0:
            save()
    save()
    vae.eval()
    if not args.decoder_only:
        mean, std = measure_scale(vae)
        vae.register_to_config(scaling_factor=1.0 / std)
        print(f"latent mean {mean:.4f} std {std:.4f} -> scaling_factor {1/std:.4f}", flush=True)
    vae.save_pretrained(os.path.join(args.out, "vae"))
    # reconstruction check
    with torch.no_grad():
        x, _, _ = image_batch(ShapeGenerator(777), 64)
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        print(f"held-out recon L1 {(rec - x).abs().mean().item():.4f} "
              f"(x255: {(rec - x).abs().mean().item()*127.5:.2f})", flush=True)
        import numpy as np
        from PIL import Image
        both = torch.cat([x[:16], rec[:16]])
        arr = ((both.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype("uint8")
        grid = np.concatenate([np.concatenate(list(arr[r * 16:(r + 1) * 16]), axis=1) for r in range(2)], axis=0)
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(
            os.path.join(args.out, "recon.png"))
    print("done", flush=True)


if __name__ == "__main__":
    main()
