"""Shared pieces for the tiny-image training scripts: model configs, tokenizer,
data batches, noise schedule."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from shapes import ShapeGenerator, vocabulary  # noqa: E402

RUNS = os.path.join(HERE, "runs")
MAX_LEN = 32           # tokenizer model_max_length == CLIP max_position_embeddings
LATENT_CHANNELS = 4

VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[32, 64, 64], layers_per_block=1,
    # norm_num_groups=1: with few channels per group, GroupNorm wipes out the
    # absolute colour of flat image regions (a flat feature map normalised over
    # 2 channels keeps little more than a sign); one group keeps it.
    latent_channels=LATENT_CHANNELS, norm_num_groups=1, sample_size=64,
    mid_block_add_attention=False,
)

UNET_CONFIG = dict(
    sample_size=16, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
    layers_per_block=1, block_out_channels=[48, 96, 144],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    cross_attention_dim=64, attention_head_dim=4, norm_num_groups=8,
)

TEXT_CONFIG = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=MAX_LEN, hidden_act="quick_gelu", projection_dim=64,
)

# Noise schedule: cosine ("squaredcos_cap_v2") betas reach ~zero terminal SNR, which
# matters for flat-colour 16x16 latents (with SD's scaled_linear schedule the image
# mean leaks through the noise at t=999).  v-prediction is used because epsilon
# prediction is ill-posed at zero SNR.  "trailing" spacing starts sampling at t=999.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.00085,
    beta_end=0.012, prediction_type="v_prediction", timestep_spacing="trailing",
    steps_offset=1, clip_sample=False, set_alpha_to_one=True,
)

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def build_tokenizer():
    """Word-level tokenizer over the training vocabulary (lower-cased,
    punctuation split off, unknown words -> [UNK], [BOS] ... [EOS], padded to
    MAX_LEN by the pipeline like CLIP)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in vocabulary():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Replace("-", " ")])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]",
        pad_token="[PAD]", model_max_length=MAX_LEN, padding_side="right")
    return fast


def text_config(tokenizer):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          **TEXT_CONFIG)


def make_scheduler(cls, **overrides):
    """Instantiate a diffusers scheduler class from SCHEDULER_CONFIG (keys the
    class does not know are dropped)."""
    import inspect
    keys = inspect.signature(cls.__init__).parameters
    cfg = {k: v for k, v in {**SCHEDULER_CONFIG, **overrides}.items() if k in keys}
    return cls(**cfg)


def tokenize(tokenizer, captions):
    return tokenizer(captions, padding="max_length", max_length=MAX_LEN, truncation=True,
                     return_tensors="pt").input_ids


def image_batch(gen: ShapeGenerator, n: int, heldout=False):
    imgs, caps, attrs = [], [], []
    for _ in range(n):
        im, cap, at = gen.sample(heldout=heldout)
        imgs.append(np.asarray(im))
        caps.append(cap)
        attrs.append(at)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, caps, attrs


def save_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def set_threads():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
