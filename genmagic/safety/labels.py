"""The safety levels and how verdicts read: category names and the one-line summary that
footers, grids, the CLI and history tables show. Imports only ``errors`` (display code and the
registry use it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import OptionError

LEVELS = ("off", "warn", "standard", "strict")
DEFAULT_LEVEL = "standard"


def check_level(level: str, where: str = "--safety") -> str:
    """``level`` if it is one of :data:`LEVELS`, else a one-line error naming it and the fix."""
    if level not in LEVELS:
        raise OptionError(f"{where} {level!r} is not a safety level; use one of: {', '.join(LEVELS)}")
    return level

# MLCommons AILuminate hazard categories, plus harassment (privacy holds PII).
CATEGORY_NAMES = {
    "violent_crimes": "violent crimes",
    "non_violent_crimes": "non-violent crimes",
    "sex_related_crimes": "sex-related crimes",
    "child_sexual_exploitation": "child sexual exploitation",
    "indiscriminate_weapons": "indiscriminate weapons",
    "suicide_self_harm": "suicide and self-harm",
    "hate": "hate",
    "sexual_content": "sexual content",
    "privacy": "privacy",
    "specialized_advice": "specialized advice",
    "defamation": "defamation",
    "elections": "elections",
    "intellectual_property": "intellectual property",
    "harassment": "harassment",
}

_DONE = {"block": "blocked", "redact": "redacted", "review": "held for review", "warn": "flagged"}


def category_name(category: Any) -> str:
    category = str(category)  # a stored verdict may hold anything
    return CATEGORY_NAMES.get(category, category.replace("_", " "))


def _get(verdict: Any, name: str) -> Any:
    return verdict.get(name, "") if isinstance(verdict, dict) else getattr(verdict, name, "")


def summary(verdicts: Iterable[Any]) -> str:
    """``blocked: hate · redacted: privacy · flagged: …`` (verdict objects or their dicts);
    ``safety off`` when the run had the checks switched off; '' when nothing was found."""
    groups: dict[str, list[str]] = {}
    for v in verdicts:
        if not isinstance(v, dict) and not hasattr(v, "action"):
            continue  # a stored row of another shape
        action, category = str(_get(v, "action")), str(_get(v, "category"))
        if action == "allow":
            continue
        label, name = ("", "safety off") if category == "off" else (_DONE.get(action, action), category_name(category))
        names = groups.setdefault(label, [])
        if name not in names:
            names.append(name)
    return " · ".join(f"{label}: {', '.join(names)}" if label else ", ".join(names) for label, names in groups.items())
