"""Tiny, seeded models built in code, for tests and benchmarks (no downloads).

Like diffusers' ``get_dummy_components``: real transformers/diffusers classes with tiny
configs, saved with ``save_pretrained`` (safetensors) so they load through the same path
as any user's model folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_TEXT = """Once upon a time there was a little fox who lived in the forest.
The fox liked to read books about the stars and the sea.
Every night the fox looked at the sky and counted the stars.
Data scientists write notebooks; notebooks hold code, text and pictures.
A model reads a prompt and writes an answer, one token at a time.
The quick brown fox jumps over the lazy dog. {"key": [1, 2, 3]}
"""


def build_tiny_text_model(path: str | os.PathLike[str], *, chat_template: bool = True, context: int = 64) -> Path:
    """A 1-layer, 32-wide GPT-2 with a 300-token byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TEXT.splitlines() * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = (
            "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}"
        )
    fast.save_pretrained(out)
    eos = fast.eos_token_id
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=context,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.generation_config.bos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    model.save_pretrained(out, safe_serialization=True)
    return out


_IMAGE_WORDS = ["a", "an", "the", "red", "green", "blue", "yellow", "white", "black", "orange", "purple", "circle", "square", "triangle", "star", "on", "of", "and", "with", "background", "small", "large", "big", "tiny", "blurry", "bright", "dark", "picture", "photo"]


def build_tiny_image_pipeline(path: str | os.PathLike[str], *, sample_size: int = 64, nsfw: bool | None = None) -> Path:
    """A tiny Stable Diffusion pipeline (VAE 64x64 → 16x16x4, 2-level UNet, 2-layer CLIP
    text encoder, word-level tokenizer), seeded, saved with ``save_pretrained``.

    ``nsfw``: None, no safety checker; True, a tiny ``StableDiffusionSafetyChecker`` that flags
    every image; False, one that flags none (see :func:`tiny_safety_checker`)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {w: i for i, w in enumerate(special + list(dict.fromkeys(_IMAGE_WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]", pad_token="[PAD]",
        model_max_length=16, padding_side="right",
    )
    torch.manual_seed(0)
    vae: Any = AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32), layers_per_block=1, latent_channels=4,
        norm_num_groups=8, sample_size=sample_size,
    )
    unet: Any = UNet2DConditionModel(
        sample_size=sample_size // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8,
    )
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3,
        projection_dim=32,
    ))
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    pipe: Any = StableDiffusionPipeline(
        vae=vae.eval(), text_encoder=text.eval(), tokenizer=tokenizer, unet=unet.eval(), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    if nsfw is not None:
        pipe.safety_checker, pipe.feature_extractor = tiny_safety_checker(flag=nsfw)
        pipe.register_modules(safety_checker=pipe.safety_checker, feature_extractor=pipe.feature_extractor)
        pipe.register_to_config(requires_safety_checker=True)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def tiny_safety_checker(*, flag: bool) -> tuple[Any, Any]:
    """A tiny diffusers ``StableDiffusionSafetyChecker`` (2-layer CLIP vision tower, 32x32 input)
    and its ``CLIPImageProcessor``. It flags an image when the cosine between the image's
    embedding and a concept embedding exceeds that concept's threshold: the thresholds are set
    to -2 (``flag=True``: every image) or 2 (never), below and above any cosine."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessorPil

    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    torch.manual_seed(0)
    checker: Any = StableDiffusionSafetyChecker(config).eval()
    threshold = -2.0 if flag else 2.0
    with torch.no_grad():
        checker.concept_embeds.copy_(torch.randn_like(checker.concept_embeds))
        checker.special_care_embeds.copy_(torch.randn_like(checker.special_care_embeds))
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(2.0)  # the special-care pass only nudges the scores
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, processor


def build_tiny_image_classifier(path: str | os.PathLike[str], *, labels: tuple[str, ...] = ("safe", "nsfw"),
                                probs: Mapping[str, float] | None = None, multi_label: bool = False) -> Path:
    """A tiny ViT image classifier (32x32, 1 layer) saved with ``save_pretrained`` (safetensors).
    ``probs``: the probability it gives each label for every image (its head's weights zeroed,
    the biases set to log p, or to logit p for a ``multi_label`` model; a label not named gets
    ~0), or None (random weights)."""
    import math

    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    if probs is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            p = [min(max(probs.get(name, 0.0), 1e-9), 1 - 1e-6) for name in labels]
            bias = [math.log(x / (1 - x)) if multi_label else math.log(x) for x in p]
            model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(out, safe_serialization=True)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)
    return out
