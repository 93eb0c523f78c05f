"""Safety policy: the levels, what each level does with a check's verdicts, and the checks
that run by default (PII, moderation, image) plus third-party ones (``genmagic.checks``).

A check proposes an action for the level it is given (``standard`` or ``strict``); the policy
then applies the level: ``warn`` turns every block, redact and review into a warning (nothing is
changed or withheld, everything is shown), ``off`` runs no check at all and leaves a visible
notice on the result and in history instead.

The check protocol (the engine's ``Check``)::

    name: str
    screen(text, stage, request, level) -> list[Verdict]        # stage: prompt | output
    redact(text, verdicts) -> str                                  # optional: for action "redact"
    screen_stream(text, request, level) -> list[Verdict]           # optional: cheap, on streamed output
    screen_images(images, request, level, flags) -> list[Verdict]  # optional: image outputs

Importing this module imports no model code: the checks load their models on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import Verdict
from .digest import files_digest
from .labels import CATEGORY_NAMES, DEFAULT_LEVEL, LEVELS, category_name, check_level  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..request import Request

ACTIONS = ("allow", "redact", "warn", "block", "review")
ENTRY_POINT_GROUP = "genmagic.checks"

def apply_level(verdicts: Iterable[Verdict], level: str) -> list[Verdict]:
    """The verdicts as ``level`` acts on them: at ``warn`` nothing is blocked, changed or withheld."""
    if level != "warn":
        return list(verdicts)
    return [dataclasses.replace(v, action="warn") if v.action in ("block", "redact", "review") else v for v in verdicts]


def off_notice(target: str = "prompt") -> Verdict:
    """What a run with the checks switched off carries, so that it shows and history says so."""
    return Verdict(check="safety", category="off", score=0.0, action="warn", stage="prompt", target=target,
                   reason="safety checks were off for this run (--safety off): nothing was screened")


def leaves_machine(request: Request) -> bool:
    """Whether the request goes to another machine (a served model): its backend says so."""
    spec = getattr(request, "spec", None)
    if spec is None:
        return False
    from ..registry import get_backend

    try:
        return bool(getattr(get_backend(spec.backend), "remote", False))
    except Exception:  # an unknown backend fails the run elsewhere, with its own error
        return False


def policy_key(checks: Sequence[Any], level: str) -> str | None:
    """What decides the verdicts on a text: the level and each check's name and ``version`` (its
    code, data, model files and settings). A run records it; a cache hit under the same key reuses
    the stored verdicts (screening again would give the same ones, and would load the semantic
    model into a process that needs nothing else), any other key screens again. None when a check
    declares no ``version`` (a third-party or notebook check may change without a trace): then
    every run is screened."""
    h = hashlib.sha256(f"{level}\0{files_digest(__file__, _SCREEN)}".encode())
    for check in checks:
        version = getattr(check, "version", None)
        if version is None:
            return None
        h.update(f"\0{getattr(check, 'name', '')}\0{version() if callable(version) else version}".encode())
    return h.hexdigest()[:16]


_SCREEN = str(Path(__file__).with_name("screen.py"))  # how verdicts act


# --------------------------------------------------------------------------- the built-in checks


class PiiCheck:
    """PII (email, phone, card, IBAN, US SSN, IP address), validated (see :mod:`genmagic.safety.pii`).

    In a prompt: redacted before it leaves the machine at ``standard``, always at ``strict``,
    otherwise flagged. In an output: flagged at ``standard``, redacted at ``strict``. The same value
    gets the same placeholder for the whole session (``<EMAIL_1>``), so a conversation stays coherent.
    """

    name = "pii"

    def __init__(self, mode: str = "placeholder") -> None:
        from .pii import Redactor

        self.redactor = Redactor(mode)
        self._lock = threading.Lock()

    def version(self) -> str:
        return f"{self.redactor.mode}:{files_digest(_here('pii.py'))}"

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        from .pii import find_pii

        matches = find_pii(text)
        if not matches:
            return []
        if stage == "prompt":
            redact = level == "strict" or (level == "standard" and leaves_machine(request))
        else:
            redact = level == "strict"
        action = "redact" if redact else "warn"
        kinds = sorted({m.type for m in matches})
        return [Verdict(
            check=self.name, category="privacy", score=max(m.score for m in matches), action=action,
            spans=tuple((m.start, m.end) for m in matches), stage=stage,
            reason=f"personal data: {', '.join(kinds)} ({len(matches)} found)" + (", redacted" if redact else ""),
        )]

    def redact(self, text: str, verdicts: Sequence[Verdict]) -> str:
        from .pii import find_pii

        with self._lock:  # one numbering of placeholders, whatever thread runs
            return str(self.redactor.redact(text, find_pii(text)))


class ModerationCheck:
    """Unsafe requests and outputs: a fast rule layer, then a classifier over labelled examples
    on all-MiniLM-L6-v2 embeddings when ``genmagic[safety]`` is installed (see
    :mod:`genmagic.safety.moderation`)."""

    name = "moderation"

    def __init__(self, moderator: Any = None) -> None:
        self.moderator = moderator or shared_moderator()

    def _verdicts(self, findings: Iterable[Any], stage: str) -> list[Verdict]:
        return [Verdict(check=self.name, category=f.category, score=float(f.score), action=f.action,
                        spans=(tuple(f.span),) if f.span else (), stage=stage, reason=f.reason)
                for f in findings]

    # The classifier learned from requests and statements; a model's output is narrative (stories,
    # history, news) where violent or sexual words are common and benign. At `standard` its blocks on
    # an output therefore need more confidence (clearly unsafe outputs score >= 0.95); below, they warn.
    # The rule layer and `strict` keep their own thresholds.
    OUTPUT_BLOCK_AT_STANDARD = 0.85

    def version(self) -> str:
        files = [_here(name) for name in ("moderation.py", "semantic.py", "taxonomy.py")]
        if self.moderator.semantic_available:
            files.append(_here("data", "moderation_head.safetensors"))
        return files_digest(*files) + f":{self.OUTPUT_BLOCK_AT_STANDARD}"

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
        findings = self.moderator.screen(pii_masked(text), _model_level(level))
        if stage == "output":  # a withheld output's reason must not quote it
            findings = [dataclasses.replace(f, reason=_RULE_SNIPPET.sub("", f.reason)) for f in findings]
        if stage == "output" and level != "strict":
            findings = [dataclasses.replace(f, action="warn")
                        if f.action == "block" and f.layer == "semantic" and f.score < self.OUTPUT_BLOCK_AT_STANDARD
                        else f for f in findings]
        return self._verdicts(findings, stage)

    def screen_stream(self, text: str, request: Request, level: str) -> list[Verdict]:
        findings = self.moderator.screen(text, _model_level(level), semantic=False)
        return self._verdicts([dataclasses.replace(f, reason=_RULE_SNIPPET.sub("", f.reason)) for f in findings],
                              "output")


_RULE_SNIPPET = re.compile(r' \(rule: ".*"\)$')
_PII_WORDS = {"email": "EMAIL", "phone": "PHONE", "credit_card": "CARD", "iban": "IBAN", "us_ssn": "SSN",
              "ip_address": "IP"}


def pii_masked(text: str) -> str:
    """``text`` with each PII value replaced by its type word, padded to the same length (so
    offsets stay): personal data is the PII check's business (redacted or flagged); the classifier
    would read an address or a card number as a request to expose someone's data."""
    from .pii import find_pii

    for m in reversed(find_pii(text)):
        word = _PII_WORDS.get(m.type, "DATA")[: m.end - m.start]
        text = text[: m.start] + word.ljust(m.end - m.start) + text[m.end:]
    return text


def _here(*parts: str) -> str:
    return str(Path(__file__).parent.joinpath(*parts))


@functools.cache
def shared_moderator() -> Any:
    """The process's moderator: its semantic model loads once, on first use."""
    from .moderation import Moderator

    return Moderator()


def _model_level(level: str) -> str:
    return "strict" if level == "strict" else "standard"  # warn: standard's findings, turned into warnings


def default_checks(image_classifier: str | None = None, redaction: str | None = None) -> list[Any]:
    """The checks a new engine runs: PII (``redaction``: placeholder (default), mask or hash),
    moderation, image safety, then any installed under the ``genmagic.checks`` entry-point group
    (a class or factory called with no arguments)."""
    return [*_builtin_checks(image_classifier, redaction or "placeholder"), *entry_point_checks()]


@functools.cache
def _builtin_checks(image_classifier: str | None, redaction: str) -> tuple[Any, ...]:
    """One set per process and configuration: the semantic model loads once, and a value gets the
    same placeholder in every engine of the session."""
    from .image import ImageCheck

    return PiiCheck(redaction), ModerationCheck(), ImageCheck(image_classifier)


def entry_point_checks() -> list[Any]:
    from importlib.metadata import entry_points

    found: list[Any] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
            check = factory()
        except Exception as err:  # a broken plugin is reported, never silently skipped, never fatal
            print(f"genmagic: the safety check {ep.name!r} ({ep.value}) could not be loaded: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)
            continue
        if not callable(getattr(check, "screen", None)):
            print(f"genmagic: the safety check {ep.name!r} ({ep.value}) has no screen() method; not used",
                  file=sys.stderr)
            continue
        if not getattr(check, "name", None):
            check.name = ep.name
        found.append(check)
    return found
