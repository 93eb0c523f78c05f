"""Pieces for running many prompts through a causal LM at once, with each row as it would be alone.

- :func:`row_sampler`: sampling with one ``torch.Generator`` per row. transformers samples a
  batch with the one global RNG, so row *i*'s draw would depend on the rows before it; this
  processor does the temperature / top-k / top-p warping (transformers' own warpers, in
  transformers' order) and draws each row's token with that row's generator, leaving every
  other token at ``-inf``, so the greedy step that follows picks it. Single runs use it too,
  which is what makes a seeded row of a batch the same text as the same prompt and seed alone.
- :class:`RowStreamer`: one streamer per row behind ``generate``'s single ``streamer``.
- :class:`RowsCancelled`: a row whose sink is cancelled stops alone (transformers finishes rows
  one by one; the others go on).
- :func:`left_pad`, :func:`plan`, :func:`auto_batch_size`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..options import TextOptions

# KV-cache memory the automatic batch size may fill: on the CPU, and the share of a GPU's free memory.
CPU_BATCH_BYTES = 1 << 30
GPU_BATCH_SHARE = 0.25
MAX_BATCH = {"cpu": 32, "other": 128}


def row_sampler(options: TextOptions, seeds: Sequence[int | None], device: str) -> Any:
    """A ``LogitsProcessorList`` for greedy ``generate`` that samples row ``i`` with a generator
    seeded with ``seeds[i]`` (a random one for None); empty for greedy options (temperature 0)."""
    from transformers import LogitsProcessorList

    if options.temperature <= 0:
        return LogitsProcessorList()
    return LogitsProcessorList([_RowSampler(options, seeds, device)])


class _RowSampler:
    def __init__(self, options: TextOptions, seeds: Sequence[int | None], device: str) -> None:
        import torch
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.warpers: list[Any] = []
        if options.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(options.temperature))
        if options.top_k:
            self.warpers.append(TopKLogitsWarper(top_k=options.top_k, min_tokens_to_keep=1))
        if options.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=options.top_p, min_tokens_to_keep=1))
        self.generators = []
        for seed in seeds:
            generator = torch.Generator(device=device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
            self.generators.append(generator)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.view(-1, 1), 0.0)
        return out


class RowStreamer:
    """``generate``'s streamer for a batch: the prompt call is skipped; each later call carries one
    token per row, handed to that row's own streamer (which has a ``sink``) until the row has ended
    (an end or pad token: the pad tokens a finished row gets are not its text; or its sink was
    cancelled)."""

    def __init__(self, rows: Sequence[Any], ends: set[int]) -> None:
        self.rows = list(rows)
        for row in self.rows:  # they hear the prompt through this streamer, which skips it
            row.prompt_seen = True
        self.ends = ends
        self.finished = [False] * len(rows)
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if self.finished[i]:
                continue
            if int(token) in self.ends or getattr(self.rows[i].sink, "cancelled", False):
                self.finished[i] = True  # a cancelled row stops here; the stopping criterion ends it
                continue
            self.rows[i].put(value.new_tensor([token]))

    def end(self) -> None:
        pass


def rows_cancelled(sinks: Sequence[Any]) -> Any:
    """A stopping criterion: row ``i`` stops when ``sinks[i].cancelled``."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class RowsCancelled(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.tensor([bool(getattr(s, "cancelled", False)) for s in sinks], device=input_ids.device)

    return StoppingCriteriaList([RowsCancelled()])


def left_pad(rows: Sequence[Sequence[int]], pad: int, device: str) -> tuple[Any, Any]:
    """Token ids padded on the left (a decoder-only model continues from the right edge) and the
    attention mask that hides the padding."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def auto_batch_size(model: Any, device: str, dtype_bytes: int, tokens: int) -> int:
    """Rows per batch when ``--batch-size`` is left out: as many as the KV cache of ``tokens``
    (prompt + new tokens) per row fits in 1 GiB on the CPU or a quarter of an accelerator's free
    memory, at most 32 on the CPU (more rows only add padding there) and 128 elsewhere."""
    config = model.config
    text = getattr(config, "get_text_config", lambda: config)()
    layers = int(getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0) or 12)
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0) or 768)
    heads = int(getattr(text, "num_attention_heads", 0) or getattr(text, "n_head", 0) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", 0) or heads)
    per_row = 2 * layers * hidden * kv_heads // max(1, heads) * max(1, tokens) * dtype_bytes
    kind = device.split(":")[0]
    budget = CPU_BATCH_BYTES
    if kind == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget = int(free * GPU_BATCH_SHARE)
    cap = MAX_BATCH["cpu" if kind == "cpu" else "other"]
    return max(1, min(cap, budget // max(1, per_row)))


def plan(keys: Sequence[Hashable], lengths: Sequence[int], size: int) -> list[list[int]]:
    """Batches of row indices: rows with the same key (options that must match) together, sorted
    by length so a batch pads little, at most ``size`` rows each."""
    groups: dict[Hashable, list[int]] = {}
    for index in sorted(range(len(keys)), key=lambda i: lengths[i]):
        groups.setdefault(keys[index], []).append(index)
    return [rows[k:k + size] for rows in groups.values() for k in range(0, len(rows), size)]


def repetition_penalty(penalty: float, pads: Sequence[int]) -> Any:
    """A ``LogitsProcessorList`` with transformers' repetition penalty (the same arithmetic as its
    ``RepetitionPenaltyLogitsProcessor``) that leaves out each row's left padding: ``pads[i]``
    leading positions of row ``i``. transformers' own processor penalises every id in the input,
    padding included, so a padded row (padded with the end token when the tokenizer has no pad
    token) would score the end token lower than the same row alone. Empty when ``penalty`` is 1."""
    from transformers import LogitsProcessorList

    if penalty == 1.0:
        return LogitsProcessorList()
    return LogitsProcessorList([_RowRepetitionPenalty(penalty, pads)])


class _RowRepetitionPenalty:
    def __init__(self, penalty: float, pads: Sequence[int]) -> None:
        self.penalty = penalty
        self.pads = list(pads)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.clone()
        for i, pad in enumerate(self.pads):
            ids = input_ids[i, pad:]
            score = torch.gather(scores[i], 0, ids)
            score = torch.where(score < 0, score * self.penalty, score / self.penalty)
            scores[i] = scores[i].scatter(0, ids, score)
        return scores
