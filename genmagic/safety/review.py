"""Human review: outputs a check sent to review are withheld (status ``review``) until a person
approves, edits or rejects them. The decision is a row in history's ``decisions`` table (the run
row itself never changes), so the lab sidebar and later sessions see it too.

In a notebook the withheld result shows an approve / edit / reject panel (:func:`review_widget`);
elsewhere, :func:`pending` lists what waits and :func:`decide` (or ``approve`` / ``reject`` with a
history id) decides it.
"""

from __future__ import annotations

import html
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from ..engine import Engine
    from ..history import Record
    from ..results import Result

DECISIONS = ("approved", "edited", "rejected")


def _engine(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from ..engine import default_engine

    return default_engine()


def pending(engine: Engine | None = None, n: int = 100) -> list[Record]:
    """The runs withheld for review that nobody has decided yet, oldest first."""
    return _engine(engine).history.pending(n)


def decide(result: Result | int, decision: str, *, engine: Engine | None = None, note: str | None = None,
           edited: list[Any] | None = None) -> None:
    """Decide a run held for review: ``approved`` puts its outputs back on the result (and so on
    the ``--out`` variable, which holds the same object), ``edited`` puts ``edited`` there instead
    (text runs), ``rejected`` keeps them withheld. ``result`` may be a history id (the sidebar's way)."""
    if decision not in DECISIONS:
        raise OptionError(f"decision {decision!r} is not one of: {', '.join(DECISIONS)}")
    run_id = result if isinstance(result, int) else result.history_id
    if run_id is None:
        raise OptionError("this result is not in the history, so there is nothing to decide")
    # the store the run is in (a result knows it), else the engine's
    history = (None if isinstance(result, int) else result.history) or _engine(engine).history
    record = history.get(run_id)
    if record is None or record.status != "review":
        state = "not in the history" if record is None else f"not held for review (status {record.status!r})"
        raise OptionError(f"run #{run_id} is {state}; see genmagic.safety.pending()")
    if decision == "edited":
        if not isinstance(result, int) and not isinstance(getattr(result, "texts", None), list):
            raise OptionError("only text outputs can be edited; approve or reject this one")
        if not edited or not all(isinstance(t, str) for t in edited):
            raise OptionError("an edit needs the new texts: decide(result, 'edited', edited=['...'])")
    history.decide(run_id, decision, note=note, edited=edited)  # refuses a second final decision
    held = result if not isinstance(result, int) else _held.get(run_id)
    if held is not None:  # also the object this session holds (its --out variable) when decided by id
        apply_decision(held, decision, edited)


# Results held for review in this session, by history id: a decision by id (%genmagic safety
# approve ID, genmagic.safety.approve) reaches the object (and so its --out variable) at once.
_held: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def hold(result: Result) -> None:
    """Remember a result held for review, so a decision made by its id reaches it."""
    if result.history_id is not None and result.status == "review":
        _held[result.history_id] = result


def apply_decision(result: Result, decision: str, edited: list[Any] | None = None) -> None:
    """What a decision does to a result object in this session."""
    if decision == "rejected":
        result.status = "rejected"
        return
    result.release()
    if decision == "edited" and edited is not None:
        texts = getattr(result, "texts", None)
        if isinstance(texts, list):
            texts[:] = list(edited) + texts[len(edited):]
    result.status = "ok"


def refresh(result: Result, engine: Engine | None = None) -> str:
    """Apply a decision made elsewhere (the lab sidebar, another kernel) to ``result``; its status."""
    if result.status == "review" and result.history_id is not None:
        final = (result.history or _engine(engine).history).final_decision(result.history_id)
        if final is not None:
            apply_decision(result, final["decision"], final["edited"])
    return result.status


def approve(run_id: int, note: str | None = None, engine: Engine | None = None) -> None:
    decide(run_id, "approved", engine=engine, note=note)


def reject(run_id: int, note: str | None = None, engine: Engine | None = None) -> None:
    decide(run_id, "rejected", engine=engine, note=note)


def review_widget(result: Result, engine: Engine | None = None) -> Any:
    """An approve / edit / reject panel for a result held for review (ipywidgets)."""
    import ipywidgets as w
    from IPython.display import display


    reasons = sorted({reason for _, reason in result.withheld.values()})
    hold(result)
    head = w.HTML(
        f"<b>Held for review</b> (history #{result.history_id}): {html.escape('; '.join(reasons))}. "
        "The result (and your --out variable) shows it only once you approve."
    )
    originals = result.originals()
    texts = [o for o in originals if isinstance(o, str)]
    images = [o for o in originals if hasattr(o, "size") and hasattr(o, "mode")]
    shown = "".join(f"<pre style='white-space:pre-wrap'>{html.escape(t)}</pre>" for t in texts)
    shown += "".join(f"<img src='data:image/png;base64,{_png64(im)}' style='max-width:256px;margin:2px'>"
                     for im in images)
    body = w.HTML(f"<details><summary>show the withheld output</summary>{shown}</details>" if shown else "")
    editor = w.Textarea(value=texts[0] if texts else "", layout=w.Layout(width="100%"),
                        description="edit", disabled=not texts)
    buttons = {name: w.Button(description=label, button_style=style) for name, label, style in (
        ("approved", "Approve", "success"), ("edited", "Approve edited", "info"), ("rejected", "Reject", "danger"))}
    if not texts:
        buttons["edited"].disabled = True
    note = w.Text(placeholder="note (optional)", layout=w.Layout(width="60%"))
    after = w.Output()
    box = w.VBox([head, body, editor, w.HBox([*buttons.values(), note]), after])

    def on_click(decision: str) -> Any:
        def handler(_: Any) -> None:
            try:
                edited = [editor.value] if decision == "edited" else None
                decide(result, decision, engine=engine, note=note.value or None, edited=edited)
            except OptionError as err:
                head.value = f"<b>Not decided:</b> {html.escape(str(err))}"
                return
            for button in buttons.values():
                button.disabled = True
            editor.disabled = note.disabled = True
            head.value = f"<b>{decision}</b> (history #{result.history_id})"
            body.value = ""
            if decision != "rejected":
                with after:
                    display(result)
        return handler

    for name, button in buttons.items():
        button.on_click(on_click(name))
    return box


def _png64(image: Any) -> str:
    import base64

    from ..display import display_png

    return base64.b64encode(display_png(image)).decode("ascii")
