"""The options of ``%%finetune``, declared once: the magic, the CLI, ``genmagic.finetune(...)``
and option panels are all built from these two dataclasses (see :mod:`genmagic.options`).

:class:`FinetuneOptions` change the adapter that training produces (they enter the run's
fingerprint, so the same data, options and seed reuse the saved adapter);
:class:`FinetuneControls` say where the data comes from and how the run is done and shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Options, opt

FORMATS = ("auto", "text", "prompt-completion", "chat")


@dataclass(frozen=True)
class FinetuneOptions(Options):
    """What changes the trained adapter: all of it is in the run's fingerprint."""

    kind: ClassVar[str] = "finetune"

    base: str = opt("tiny-text", "base model: an alias, a local folder or a cached hub id (tiny-image for an image LoRA)",
                    metavar="MODEL", example="tiny-text")
    format: str = opt("auto", "how a row becomes training text: text, prompt-completion (the prompt as a user turn "
                      "of the chat template, the loss on the completion), chat (a messages list rendered with the "
                      "base model's chat template); auto picks from the columns", choices=FORMATS)
    text_column: str = opt("text", "column (or key) holding the text (--format text)", metavar="NAME", example="reply")
    prompt_column: str = opt("prompt", "column holding the prompt (--format prompt-completion)", metavar="NAME")
    completion_column: str = opt("completion", "column holding the completion (--format prompt-completion)", metavar="NAME")
    messages_column: str = opt("messages", "column holding the chat messages (--format chat)", metavar="NAME")
    max_length: int = opt(256, "longest example in tokens; longer ones are truncated (and counted) or, with "
                          "--strict, refused", min=8, max=1_000_000, example="512")
    r: int = opt(8, "LoRA rank", min=1, max=1024, example="8")
    alpha: int = opt(16, "LoRA alpha (the update is scaled by alpha / r)", min=1, max=100_000, example="16")
    dropout: float = opt(0.0, "LoRA dropout", min=0.0, max=0.9, example="0.05")
    target_modules: tuple[str, ...] = opt(
        (), "module names to adapt (repeatable; default: the model's attention projections, found in the model)",
        repeat=True, metavar="NAME", example="q_proj")
    steps: int | None = opt(None, "optimizer steps (default: 100, or what --epochs gives)", min=1, max=10_000_000,
                            example="200")
    epochs: float | None = opt(None, "passes over the training split (instead of --steps)", min=0.01, max=100_000.0,
                               example="3")
    lr: float = opt(2e-4, "learning rate (AdamW)", min=0.0, max=10.0, example="2e-4")
    batch_size: int = opt(4, "examples per micro-batch", min=1, max=4096, example="8")
    grad_accum: int = opt(1, "micro-batches per optimizer step", min=1, max=4096, example="4")
    eval_split: float = opt(0.1, "share of the examples held out for evaluation (0 = none)", min=0.0, max=0.9,
                            example="0.2")
    seed: int = opt(0, "random seed: the same data, options and seed give the same adapter", min=0,
                    max=2**32 - 1, example="0")
    redact_pii: bool = opt(False, "replace the PII the scan finds with placeholders before training")
    # image LoRA
    images: str | None = opt(None, "image LoRA: a folder of images or a variable (list of PIL images, a DataFrame "
                             "with an image column)", metavar="DIR|VAR", example="shapes/")
    captions: str | None = opt(None, "image LoRA: the caption column (of --images as a DataFrame, or of "
                               "metadata.jsonl/.csv in the folder), or a .txt/.jsonl/.csv file",
                               metavar="COLUMN|FILE", example="caption")
    resolution: int | None = opt(None, "image LoRA: train at this size (default: the model's)", min=8, max=4096,
                                 example="64")


@dataclass(frozen=True)
class FinetuneControls(Options):
    """Where the data comes from and how the run is done and shown; not in the fingerprint."""

    kind: ClassVar[str] = "finetune-controls"

    data: str | None = opt(None, "training data: a notebook variable (DataFrame, list of texts or dicts) or a "
                           "file (.txt, .jsonl, .csv, .parquet); default: the cell body", metavar="VAR|PATH",
                           example="df", widget=False)
    strict: bool = opt(False, "refuse examples longer than --max-length instead of truncating them")
    allow_pii: bool = opt(False, "train on the PII the scan finds, unredacted")
    retrain: bool = opt(False, "train again even when an adapter with the same data, options and seed exists")
    overwrite: bool = opt(False, "replace NAME when it is already an alias that fine-tuning did not make")
    merge: bool = opt(False, "also export a merged, full model folder (GENMAGIC_HOME/merged/NAME; text models)")
    samples: int = opt(3, "eval prompts to generate from, base and tuned side by side (0 = none)", min=0, max=32,
                       example="3")
    device: str | None = opt(None, "torch device (default: cuda, then mps, then cpu); CUDA trains in bfloat16",
                             metavar="DEVICE", example="cpu", widget=False)
    safety: str | None = opt(None, "safety level of the PII scan (default: the session's)",
                             choices=("off", "warn", "standard", "strict"))
    live: bool = opt(True, "show no live progress, loss curve and Stop button", negate=True, widget=False)
