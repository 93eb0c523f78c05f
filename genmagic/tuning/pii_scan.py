"""The PII scan that runs before any training: what was found and where, and the policy.

It uses the safety package's validated detector (:func:`genmagic.safety.pii.find_pii`) and
its redaction (:class:`~genmagic.safety.pii.Redactor`, the mode of the config's
``[safety] redaction``). At ``standard`` and ``strict`` unredacted PII is refused unless
``--redact-pii`` (train on the redacted text) or ``--allow-pii``; at ``warn`` it is reported;
at ``off`` nothing is scanned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenmagicError
from .data import replace_texts, text_fields
from .options import FinetuneOptions


class PiiRefused(GenmagicError):
    """The training data holds PII and the level refuses to train on it as it is."""


@dataclass
class PiiReport:
    """PII found in the training rows: ``(row, field, type)`` of each finding."""

    found: list[tuple[int, str, str]] = field(default_factory=list)
    level: str = "standard"
    action: str = "none"  # none | reported | redacted | allowed | skipped

    def summary(self) -> str:
        """One line: counts by type, and the first rows and fields where each was found."""
        if self.action == "skipped":
            return "PII scan: skipped (safety level off)"
        if not self.found:
            return "PII scan: none found"
        parts = []
        for kind, count in Counter(t for _, _, t in self.found).most_common():
            where = [f"row {row} ({name})" for row, name, t in self.found if t == kind]
            more = f", +{len(where) - 3} more" if len(where) > 3 else ""
            parts.append(f"{count} {kind} in {', '.join(where[:3])}{more}")
        return f"PII scan: {'; '.join(parts)}" + {"redacted": " — redacted before training",
                                                    "allowed": " — kept (--allow-pii)"}.get(self.action, "")

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "action": self.action,
                "found": dict(Counter(t for _, _, t in self.found))}


def scan(rows: list[dict[str, Any]], fmt: str, options: FinetuneOptions, level: str) -> PiiReport:
    from ..safety.pii import find_pii

    report = PiiReport(level=level)
    if level == "off":
        report.action = "skipped"
        return report
    for i, row in enumerate(rows):
        for name, text in text_fields(row, fmt, options):
            report.found.extend((i, name, m.type) for m in find_pii(text))
    return report


def apply_policy(rows: list[dict[str, Any]], fmt: str, options: FinetuneOptions, report: PiiReport, *,
                 allow: bool, redaction: str = "placeholder") -> list[dict[str, Any]]:
    """The rows to train on: redacted with ``--redact-pii``; refused at ``standard``/``strict``
    when PII was found and neither ``--redact-pii`` nor ``--allow-pii`` was given."""
    if not report.found:
        return rows
    if options.redact_pii:
        from ..safety.pii import Redactor

        redactor = Redactor(redaction)
        report.action = "redacted"
        return [replace_texts(row, fmt, options, redactor.redact) for row in rows]
    if allow:
        report.action = "allowed"
        return rows
    if report.level in ("standard", "strict"):
        raise PiiRefused(f"{report.summary()}; the {report.level} safety level refuses to train on it: add "
                         "--redact-pii to replace it with placeholders, or --allow-pii to keep it")
    report.action = "reported"
    return rows
