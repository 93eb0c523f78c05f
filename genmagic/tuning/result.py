"""What ``%%finetune`` returns: the alias, the adapter folder, the card, the metrics, the loss
history and the base-vs-tuned samples, with a rich repr (summary table + samples side by side)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FinetuneResult:
    name: str
    adapter: Path
    card: dict[str, Any]
    reused: bool = False  # served from the adapter a previous identical run saved
    stopped: str = ""  # "", "stopped" (the Stop button) or "interrupted"
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    samples: list[dict[str, str]] = field(default_factory=list)
    merged: Path | None = None
    pii: str = ""  # the PII scan's summary

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.card.get("metrics", {}))

    def summary(self) -> str:
        m = self.metrics
        how = "reused the saved adapter (same data, options and seed; --retrain trains again)" if self.reused else \
            f"trained {m.get('steps', '?')}/{m.get('planned_steps', '?')} steps" + (f" ({self.stopped})" if self.stopped else "")
        ppl = ""
        if m.get("perplexity_before") is not None and m.get("perplexity_after") is not None:
            ppl = f" · eval perplexity {m['perplexity_before']:.2f} → {m['perplexity_after']:.2f}"
        raw = " (plain text to continue, as trained: the alias sets --raw)" \
            if self.card.get("data", {}).get("format") == "text" else ""
        merged = f" · merged model in {self.merged}" if self.merged else ""
        return f"{self.name}: {how}{ppl} · use it with -m {self.name}{raw}{merged}"

    def __repr__(self) -> str:
        return f"<FinetuneResult {self.summary()}>"

    def _repr_html_(self) -> str:
        from ..display import MUTED

        m = self.metrics
        rows = [("alias", f"<code>{html.escape(self.name)}</code> (base <code>{html.escape(str(self.card.get('base')))}</code>)"),
                ("adapter", f"<code>{html.escape(str(self.adapter))}</code>")]
        if self.merged:
            rows.append(("merged model", f"<code>{html.escape(str(self.merged))}</code>"))
        for key in ("steps", "planned_steps", "train_examples", "eval_examples", "final_loss", "perplexity_before",
                    "perplexity_after", "seconds"):
            if m.get(key) is not None:
                value = m[key]
                rows.append((key.replace("_", " "), f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))))
        if self.pii:
            rows.append(("PII", html.escape(self.pii)))
        table = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>" for k, v in rows)
        out = [f"<div><b>{html.escape(self.summary())}</b></div><table>{table}</table>"]
        if self.samples:
            head = "<tr><th>prompt</th><th>base</th><th>tuned</th><th>reference</th></tr>"
            body = "".join(
                "<tr>" + "".join(f"<td style='text-align:left; vertical-align:top; white-space:pre-wrap'>"
                                 f"{html.escape(s[k])}</td>" for k in ("prompt", "base", "tuned", "reference")) + "</tr>"
                for s in self.samples)
            out.append(f"<div style='color: {MUTED}'>samples (greedy) on eval prompts</div><table>{head}{body}</table>")
        return "\n".join(out)
