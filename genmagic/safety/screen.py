"""Screening one run: every text the user sends (prompt, system prompt, chat turns, negative
prompt) before the model sees it, the output as it streams, and the final outputs.

What the verdicts do (after :func:`policy.apply_level`):

- ``redact`` on a user text: the check's ``redact()`` rewrites that text, and the request the model
  gets (and history records) carries the rewritten text. On an output: the output is rewritten.
- ``block`` on a user text: the run does not happen (the engine raises ``BlockedError``). On a
  streamed output: the stream stops within a token, the view replaces what it showed. On a final
  output: the output is withheld (the result's ``withhold``), the status is ``blocked``.
- ``review``: the outputs are withheld until a person approves them (status ``review``).
- ``warn``: shown and recorded, nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..request import Event
from ..results import Verdict
from .labels import category_name
from .policy import apply_level

if TYPE_CHECKING:
    from ..request import Request
    from ..results import Result


def user_texts(request: Request) -> list[tuple[str, str]]:
    """``(target, text)`` of every text the user sends with ``request`` (the model's own earlier
    turns are :func:`model_turns`)."""
    texts = [("prompt", request.prompt)]
    for name in ("system", "negative"):
        value = getattr(request.options, name, None)
        if value:
            texts.append((name, str(value)))
    texts += [(f"turn {i + 1}", content) for i, (role, content) in enumerate(request.messages) if role != "assistant"]
    return texts


def model_turns(request: Request) -> list[tuple[str, str]]:
    """The model's earlier answers in a conversation: sent again with the request (maybe to another
    machine), so what must not leave it (PII) is checked in them too."""
    return [(f"turn {i + 1}", content) for i, (role, content) in enumerate(request.messages) if role == "assistant"]


def screen_request(checks: Sequence[Any], request: Request, level: str) -> list[Verdict]:
    """Verdicts on everything the request sends: the user's texts by every check, the model's
    earlier turns by the checks that redact (their content was screened when they were outputs)."""
    redacting = [c for c in checks if callable(getattr(c, "redact", None))]
    return (screen_texts(checks, user_texts(request), "prompt", request, level)
            + screen_texts(redacting, model_turns(request), "prompt", request, level))


def call_check(check: Any, text: str, stage: str, request: Request, level: str) -> list[Verdict]:
    """``check.screen`` on one text. A check written for the three-argument protocol (no level)
    works; a check that fails does not lose the run: it becomes a ``review`` verdict naming it
    (fail closed: the outputs wait for a person)."""
    name = getattr(check, "name", "") or type(check).__name__
    try:
        if _takes_level(cast(Hashable, type(check))):
            return list(check.screen(text, stage, request, level))
        return list(check.screen(text, stage, request))
    except Exception as err:
        return [Verdict(name, "check_failed", 1.0, "review", stage=stage,
                        reason=f"the check {name!r} failed ({type(err).__name__}: {err}); held for review")]


@functools.lru_cache(maxsize=256)
def _takes_level(cls: Any) -> bool:
    try:
        params = inspect.signature(cls.screen).parameters
    except (TypeError, ValueError):
        return True
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params.values()) or len(positional) >= 5  # self + 4


def screen_texts(checks: Sequence[Any], texts: Iterable[tuple[str, str]], stage: str, request: Request,
                 level: str) -> list[Verdict]:
    out: list[Verdict] = []
    for target, text in texts:
        if not text:
            continue
        for check in checks:
            for v in call_check(check, text, stage, request, level):
                out.append(dataclasses.replace(v, stage=stage, target=v.target or target,
                                               check=v.check or getattr(check, "name", "")))
    return apply_level(out, level)


def _redacted(checks: Sequence[Any], text: str, verdicts: Sequence[Verdict]) -> str:
    for check in checks:
        mine = [v for v in verdicts if v.check == getattr(check, "name", None) and v.action == "redact"]
        if mine and callable(getattr(check, "redact", None)):
            text = check.redact(text, mine)
    return text


def redact_request(checks: Sequence[Any], request: Request, verdicts: Sequence[Verdict]) -> Request:
    """``request`` with each user text that has ``redact`` verdicts rewritten by its checks."""
    targets = {v.target for v in verdicts if v.action == "redact"}
    if not targets:
        return request
    prompt, options, messages = request.prompt, request.options, list(request.messages)
    for target, text in user_texts(request) + model_turns(request):
        if target not in targets:
            continue
        new = _redacted(checks, text, [v for v in verdicts if v.target == target])
        if target == "prompt":
            prompt = new
        elif target in ("system", "negative"):
            options = options.replace(**{target: new})
        else:
            i = int(target.split()[1]) - 1
            messages[i] = (messages[i][0], new)
    return dataclasses.replace(request, prompt=prompt, options=options, messages=tuple(messages))


def screen_outputs(checks: Sequence[Any], result: Result, request: Request, level: str) -> list[Verdict]:
    """Verdicts on every output of ``result``: its texts, and its images for checks that screen images."""
    texts = [(f"output {i + 1}", t) for i, t in enumerate(getattr(result, "texts", None) or [])]
    verdicts = screen_texts(checks, texts, "output", request, level)
    images = getattr(result, "images", None)
    if images:
        flags = list(getattr(result, "nsfw", None) or [])
        found: list[Verdict] = []
        for check in checks:
            if callable(getattr(check, "screen_images", None)):
                try:
                    verdicts_of = check.screen_images(list(images), request, level, flags)
                except Exception as err:  # fail closed, as call_check does
                    name = getattr(check, "name", "") or type(check).__name__
                    verdicts_of = [Verdict(name, "check_failed", 1.0, "review", stage="output",
                                           reason=f"the check {name!r} failed ({type(err).__name__}: {err}); "
                                           "held for review")]
                found += [dataclasses.replace(v, stage="output", check=v.check or check.name) for v in verdicts_of]
        verdicts += apply_level(found, level)
    return verdicts


def output_index(target: str) -> int | None:
    """``"output 2"`` / ``"image 2"`` → 1; anything else → None."""
    kind, _, number = target.partition(" ")
    return int(number) - 1 if kind in ("output", "image") and number.isdigit() else None


def apply_outputs(checks: Sequence[Any], result: Result, verdicts: Sequence[Verdict],
                  prompt_review: Verdict | None = None) -> None:
    """Act on output verdicts: rewrite redacted texts, withhold blocked outputs (status ``blocked``),
    withhold everything for review (status ``review``; also when the prompt asked for review:
    ``prompt_review``). A failed run keeps its status."""
    texts = getattr(result, "texts", None)
    for v in verdicts:
        i = output_index(v.target)
        if v.action == "redact" and texts is not None and i is not None and i < len(texts):
            texts[i] = _redacted(checks, texts[i], [w for w in verdicts if w.target == v.target])
    blocked = [v for v in verdicts if v.action == "block"]
    for v in blocked:
        i = output_index(v.target)
        if i is not None:
            result.withhold(i, v)
    review = [v for v in verdicts if v.action == "review"] + ([prompt_review] if prompt_review else [])
    if review:  # every output waits (the blocked ones stay blocked)
        for i in range(result.output_count()):
            result.withhold(i, review[0])
    if result.status in ("ok", "interrupted") and (blocked or review):
        result.status = "blocked" if blocked else "review"


_BOUNDARY = re.compile(r"[.!?;:\n]")


class ScreeningSink:
    """Wraps a run's sink: streamed text is screened as it arrives (each sample at each sentence
    end, or every ``every`` characters, with some overlap so a phrase split between two checks is
    still seen), using the checks' cheap ``screen_stream``. A ``block`` stops the run (``cancelled``),
    and the view is told (``Event("withheld", reason, index)``).

    A view that can take back what it showed (a notebook cell; any sink that does not say
    otherwise) gets each token at once and is told to replace the text on a block. A view with
    ``retracts = False`` (a terminal, a file, a pipe: :class:`~genmagic.sinks.StreamSink`) gets
    text only once a check has passed it, and the last unchecked piece only after the final screen
    of the outputs (:meth:`finish`), so a blocked output never reaches it."""

    def __init__(self, inner: Any, checks: Sequence[Any], request: Request, level: str, every: int = 80,
                 overlap: int = 200) -> None:
        self.inner = inner
        self.request = request
        self.level = level
        self.every = every
        self.overlap = overlap
        self.streamers = [c for c in checks if callable(getattr(c, "screen_stream", None))]
        self.hold = getattr(inner, "retracts", True) is False  # a view that says it cannot take text back
        self._seen: dict[int, str] = {}  # not `texts`: that name is the wrapped view's
        self._held: dict[int, list[Event]] = {}  # tokens not yet passed to a view that cannot retract
        self.checked: dict[int, int] = {}
        self.blocked: list[Verdict] = []
        self._told: set[int] = set()  # samples the view was told are withheld

    @property
    def cancelled(self) -> bool:
        return bool(self.blocked) or bool(getattr(self.inner, "cancelled", False))

    def emit(self, event: Event) -> None:
        if event.type != "token":
            self.inner.emit(event)
            return
        if self.blocked:
            return  # the backend stops at its next check of `cancelled`: nothing more is shown
        i = event.index
        text = self._seen.get(i, "") + event.data
        self._seen[i] = text
        if self.hold:
            self._held.setdefault(i, []).append(event)
        else:
            self.inner.emit(event)
        done = self.checked.get(i, 0)
        if len(text) - done >= self.every or _BOUNDARY.search(event.data):
            self.check(i, text, done)
            if not self.blocked:
                self._release(i)

    def _release(self, index: int) -> None:
        for event in self._held.pop(index, []):
            self.inner.emit(event)

    def _tell(self, index: int, reason: str) -> None:
        if index not in self._told:
            self._told.add(index)
            self._held.pop(index, None)
            self.inner.emit(Event("withheld", reason, index))

    def finish(self, result: Result) -> None:
        """After the final screen: the view learns which outputs are withheld; the rest of the held
        text goes out."""
        for index in sorted(set(self._held) | set(result.withheld)):
            if index in result.withheld:
                self._tell(index, f"output withheld by a safety check ({result.withheld[index][1]})")
            else:
                self._release(index)

    def abort(self, checks: Sequence[Any]) -> None:
        """The backend failed mid-run: what it streamed is screened in full now, since no result will
        be; a block or review hides it. Held text (never fully screened) is not shown."""
        for index, text in self._seen.items():
            found = screen_texts(checks, [(f"output {index + 1}", text)], "output", self.request, self.level)
            stop = [v for v in found if v.action in ("block", "review")]
            if stop:
                self._tell(index, f"output withheld by a safety check ({stop[0].reason or stop[0].category})")
        self._held.clear()

    def check(self, index: int, text: str, done: int) -> None:
        start = max(0, done - self.overlap)
        window = text[start:]
        found: list[Verdict] = []
        for c in self.streamers:
            try:
                found += c.screen_stream(window, self.request, self.level)
            except Exception:  # nothing lost: the final screen runs the check again, and records a failure
                continue
        found = apply_level(found, self.level)
        self.checked[index] = len(text)
        blocks = [dataclasses.replace(v, stage="output", target=f"output {index + 1}",
                                      spans=tuple((a + start, b + start) for a, b in v.spans))
                  for v in found if v.action == "block"]
        if blocks:
            self.blocked = blocks
            self._tell(index, f"output withheld by a safety check ({blocks[0].reason or category_name(blocks[0].category)})")

    def close(self, success: bool, note: str = "", final: Any = None) -> Any:
        close = getattr(self.inner, "close", None)
        return close(success, note, final) if callable(close) else False

    def __getattr__(self, name: str) -> Any:  # the live view's own attributes (texts, view, ...)
        return getattr(self.inner, name)
