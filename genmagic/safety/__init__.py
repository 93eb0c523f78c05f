"""Safety checks: PII detection and redaction, prompt and output moderation, image safety,
human review. See docs/ARCHITECTURE.md ("Safety").

Every run goes through the checks (``Engine.checks``) at the level of the run, the session or the
config (``off | warn | standard | strict``). This package's own API, for data you are about to use
and for the review queue::

    genmagic.safety.check_text("call me at +44 20 7946 0958")   # -> TextCheck(allowed, action, ...)
    genmagic.safety.pending()                                   # runs held for review
    genmagic.safety.approve(12); genmagic.safety.reject(13)
    genmagic.safety.refresh(result)                             # a decision made elsewhere, on the object

Importing it imports no model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .labels import LEVELS, check_level

if TYPE_CHECKING:
    from ..history import Record

__all__ = ["LEVELS", "TextCheck", "approve", "check_text", "check_texts", "pending", "refresh", "reject"]

_SEVERITY = {"allow": 0, "warn": 1, "redact": 2, "review": 3, "block": 4}


@dataclass
class TextCheck:
    """What the checks say about one text (``genmagic check`` writes it as one JSON line)."""

    text: str
    allowed: bool  # False when the text would be blocked or held for review at this level
    action: str  # the strongest action: allow | warn | redact | review | block
    categories: list[str] = field(default_factory=list)
    pii: list[dict[str, Any]] = field(default_factory=list)  # {"type", "start", "end"}
    redacted: str = ""  # the text with its PII replaced by typed placeholders
    reasons: list[str] = field(default_factory=list)

    def to_dict(self, id: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {} if id is None else {"id": id}
        out.update(allowed=self.allowed, action=self.action, categories=self.categories, pii=self.pii,
                   redacted=self.redacted, reasons=self.reasons)
        return out


def check_texts(texts: list[str], level: str = "standard", redaction: str = "placeholder") -> list[TextCheck]:
    """Check many texts (the moderation model embeds them in batches)."""
    from .pii import Redactor, find_pii
    from .policy import pii_masked, shared_moderator

    check_level(level, "level")
    if level == "off":
        return [TextCheck(t, True, "allow", redacted=t) for t in texts]
    findings = shared_moderator().screen_many([pii_masked(t) for t in texts], "strict" if level == "strict" else "standard")
    out = []
    for text, found in zip(texts, findings, strict=True):
        matches = find_pii(text)
        actions = [f.action for f in found]
        if level == "warn":
            actions = ["warn" for _ in actions]
        if matches:
            actions.append("warn" if level == "warn" else "redact")
        action = max(actions, key=_SEVERITY.__getitem__, default="allow")
        categories = list(dict.fromkeys([f.category for f in found] + (["privacy"] if matches else [])))
        out.append(TextCheck(
            text=text, allowed=action not in ("block", "review"), action=action, categories=categories,
            pii=[{"type": m.type, "start": m.start, "end": m.end} for m in matches],
            redacted=Redactor(redaction).redact(text, matches) if matches else text,
            reasons=[f.reason for f in found] + ([f"personal data: {', '.join(sorted({m.type for m in matches}))}"]
                                                 if matches else []),
        ))
    return out


def check_text(text: str, level: str = "standard", redaction: str = "placeholder") -> TextCheck:
    """What the checks say about ``text`` at ``level``: allowed or not, the action, the categories,
    the PII found (type and character offsets) and the text with that PII redacted."""
    return check_texts([text], level, redaction)[0]


def pending(n: int = 100) -> list[Record]:
    """The runs held for review that nobody has decided yet, oldest first (default engine's history)."""
    from .review import pending as _pending

    return _pending(None, n)


def approve(run_id: int, note: str | None = None) -> None:
    from .review import approve as _approve

    _approve(run_id, note)


def reject(run_id: int, note: str | None = None) -> None:
    from .review import reject as _reject

    _reject(run_id, note)


def refresh(result: Any) -> str:
    """Apply a decision made elsewhere (``approve``, the lab sidebar, another kernel) to a result
    held for review in this session; its status."""
    from .review import refresh as _refresh

    return _refresh(result)
