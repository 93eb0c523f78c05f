"""LoRA training of a causal language model with peft, in a plain torch loop.

The loop is what one would write by hand (AdamW on the LoRA weights, gradient accumulation,
padding to the longest example of each micro-batch), plus three things: it asks the live view
``monitor`` whether to stop after every optimizer step (the Stop button, a kernel interrupt),
it measures the eval loss now and then, and it runs under a forked, seeded RNG (the same data,
options and seed give the same adapter). On CUDA it trains in bfloat16; elsewhere in float32.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import OptionError
from .data import Encoded
from .options import FinetuneOptions

DEFAULT_STEPS = 100
_EVAL_CAP = 64  # eval examples used for the loss curve while training (the final perplexity uses all)


class Monitor(Protocol):
    """What the training loop reports to (a live view) and asks whether to stop."""

    def begin(self, total: int) -> None: ...

    def step(self, step: int, loss: float, eval_loss: float | None) -> None: ...

    @property
    def stopped(self) -> bool: ...


@dataclass
class Trained:
    model: Any  # the PeftModel
    tokenizer: Any
    device: str
    steps: int  # optimizer steps done
    total: int  # optimizer steps planned
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0
    target_modules: list[str] = field(default_factory=list)


def _linear_types() -> tuple[type, ...]:
    import torch

    linear: tuple[type, ...] = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D

        linear = (*linear, Conv1D)
    except ImportError:  # pragma: no cover
        pass
    return linear


def attention_projections(model: Any) -> list[str]:
    """The full module names of the linear layers inside the model's attention blocks
    (``model.layers.0.self_attn.q_proj``, ``transformer.h.0.attn.c_proj``...), found by walking
    the model, not from a list. Full names, because peft matches a name by its suffix and
    GPT-2's ``c_proj`` is also the MLP's output layer."""
    linear = _linear_types()
    names: dict[str, None] = {}
    for parent, module in model.named_modules():
        kind = type(module).__name__.lower()
        if "attention" not in kind and not kind.endswith("attn"):
            continue
        for child_name, child in module.named_children():
            if isinstance(child, linear):
                names[f"{parent}.{child_name}" if parent else child_name] = None
    return list(names)


def short_names(full: list[str]) -> list[str]:
    """``attn.c_proj`` for ``transformer.h.0.attn.c_proj``: each layer kind once (what the card shows)."""
    return list(dict.fromkeys(".".join(n.split(".")[-2:]) for n in full))


def linear_modules(model: Any) -> list[str]:
    """The full names of the model's linear (and GPT-2 Conv1D) layers."""
    linear = _linear_types()
    return [name for name, m in model.named_modules() if isinstance(m, linear)]


def linear_names(model: Any) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name in linear_modules(model)})


def matching(modules: list[str], target: str) -> list[str]:
    """The full names ``target`` (a name or a dotted suffix such as ``attn.c_proj``) selects."""
    return [n for n in modules if n == target or n.endswith("." + target)]


def plan_steps(options: FinetuneOptions, n_train: int) -> int:
    if options.steps is not None:
        return options.steps
    if options.epochs is not None:
        batches = math.ceil(n_train / options.batch_size)
        return max(1, math.ceil(options.epochs * batches / options.grad_accum))
    return DEFAULT_STEPS


def split(encoded: Encoded, eval_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and eval indices: a seeded shuffle; at least one of each when there are two examples."""
    import random

    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(order) * eval_split) if eval_split > 0 else 0
    if eval_split > 0 and len(order) >= 2:
        n_eval = min(max(1, n_eval), len(order) - 1)
    else:
        n_eval = 0
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def load_base(folder: str, device: str, trust_remote_code: bool = False) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..backends import quiet_progress_bars

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with quiet_progress_bars("transformers"):
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)
    moved: Any = model
    return moved.to(device), tokenizer


def wrap_lora(model: Any, options: FinetuneOptions) -> tuple[Any, list[str]]:
    """The LoRA-wrapped model and the layer kinds adapted. peft is given the full module names
    (it matches by suffix, so a bare ``c_proj`` would also adapt GPT-2's MLP)."""
    from peft import LoraConfig, get_peft_model

    if options.target_modules:
        modules = linear_modules(model)
        full: list[str] = []
        for target in options.target_modules:
            found = matching(modules, target)
            if not found:
                raise OptionError(f"--target-modules {target}: no such linear layer in {options.base}; "
                                  f"its linear layers: {', '.join(linear_names(model)[:12])} "
                                  "(a dotted suffix such as attn.c_proj picks one kind)")
            full += found
        full = list(dict.fromkeys(full))
        shown = list(options.target_modules)
    else:
        full = attention_projections(model)
        shown = short_names(full)
    if not full:
        raise OptionError(f"{options.base}: no attention projections found; name the layers to adapt with "
                          f"--target-modules (its linear layers: {', '.join(linear_names(model)[:12])})")
    chosen = set(full)
    conv1d = any(type(m).__name__ == "Conv1D" and name in chosen for name, m in model.named_modules())
    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=full, task_type="CAUSAL_LM", fan_in_fan_out=conv1d)
    with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
        warnings.filterwarnings("ignore", category=FutureWarning)
        return get_peft_model(model, config), shown


def collate(encoded: Encoded, idx: list[int], pad: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(encoded.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        n = len(encoded.input_ids[i])
        ids[row, :n] = torch.tensor(encoded.input_ids[i])
        labels[row, :n] = torch.tensor(encoded.labels[i])
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def batches(train_idx: list[int], batch_size: int, generator: Any) -> Iterator[list[int]]:
    """Micro-batches forever: each epoch in a new seeded order."""
    import torch

    while True:
        order = torch.randperm(len(train_idx), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            yield [train_idx[i] for i in order[start:start + batch_size]]


def mean_loss(model: Any, encoded: Encoded, idx: list[int], pad: int, device: str, batch_size: int) -> float:
    """The token-weighted mean loss over ``idx`` (perplexity = exp of it)."""
    import torch

    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            batch = collate(encoded, idx[start:start + batch_size], pad, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            labels = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum")
            total += float(losses)
            tokens += int((labels != -100).sum())
    model.train(was_training)
    return total / max(tokens, 1)


def train(model: Any, tokenizer: Any, encoded: Encoded, train_idx: list[int], eval_idx: list[int],
          options: FinetuneOptions, device: str, monitor: Monitor) -> Trained:
    """Train the LoRA-wrapped ``model`` in place; stops early when ``monitor.stopped``."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    total = plan_steps(options, len(train_idx))
    out = Trained(model=model, tokenizer=tokenizer, device=device, steps=0, total=total)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr)
    generator = torch.Generator().manual_seed(options.seed)
    micro = batches(train_idx, options.batch_size, generator)
    eval_every = max(1, total // 10)
    eval_part = eval_idx[:_EVAL_CAP]
    monitor.begin(total)
    started = time.perf_counter()
    model.train()
    for step in range(1, total + 1):
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(options.grad_accum):
            batch = collate(encoded, next(micro), pad, device)
            loss = model(**batch).loss / options.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
        optimizer.step()
        out.steps = step
        out.losses.append((step, step_loss))
        eval_loss = None
        if eval_part and (step % eval_every == 0 or step == total):
            eval_loss = mean_loss(model, encoded, eval_part, pad, device, options.batch_size)
            out.eval_losses.append((step, eval_loss))
        monitor.step(step, step_loss, eval_loss)
        if monitor.stopped and step < total:
            out.stopped = True
            break
    model.eval()
    out.seconds = time.perf_counter() - started
    return out
