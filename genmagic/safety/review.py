"""Human review: outputs a check sent to review are withheld (status ``review``) until a person
approves, edits or rejects them. The decision is a row in history's ``decisions`` table (the run
row itself never changes), so the lab sidebar and later sessions see it too.

In a notebook the withheld result shows an approve / edit / reject panel (:func:`review_widget`);
elsewhere, :func:`pending` lists what waits and :func:`decide` (or ``approve`` / ``reject`` with a
history id) decides it.
"""

from __future__ import annotations

import html
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
    history = _engine(engine).history
    run_id = result if isinstance(result, int) else result.history_id
    if run_id is None:
        raise OptionError("this result is not in the history, so there is nothing to decide")
    record = history.get(run_id)
    if record is None or record.status != "review":
        state = "not in the history" if record is None else f"not held for review (status {record.status!r})"
        raise OptionError(f"run #{run_id} is {state}; see genmagic.safety.pending()")
    done = [d for d in history.decisions(run_id) if d["decision"] in DECISIONS]
    if done:
        raise OptionError(f"run #{run_id} was already {done[-1]['decision']}; a decision is final")
    if decision == "edited":
        if not isinstance(result, int) and not isinstance(getattr(result, "texts", None), list):
            raise OptionError("only text outputs can be edited; approve or reject this one")
        if not edited or not all(isinstance(t, str) for t in edited):
            raise OptionError("an edit needs the new texts: decide(result, 'edited', edited=['...'])")
    history.decide(run_id, decision, note=note, edited=edited)
    if not isinstance(result, int):
        apply_decision(result, decision, edited)


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
        final = [d for d in _engine(engine).history.decisions(result.history_id) if d["decision"] in DECISIONS]
        if final:
            apply_decision(result, final[-1]["decision"], final[-1]["edited"])
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
    head = w.HTML(
        f"<b>Held for review</b> (history #{result.history_id}): {html.escape('; '.join(reasons))}. "
        "Nothing is bound to your variable until you approve."
    )
    originals = result.originals()
    texts = [o for o in originals if isinstance(o, str)]
    body = w.HTML("<details><summary>show the withheld output</summary>"
                  + "".join(f"<pre style='white-space:pre-wrap'>{html.escape(t)}</pre>" for t in texts)
                  + "</details>") if texts else w.HTML("")
    editor = w.Textarea(value=texts[0] if texts else "", layout=w.Layout(width="100%"),
                        description="edit", disabled=not texts)
    buttons = {name: w.Button(description=label, button_style=style) for name, label, style in (
        ("approved", "Approve", "success"), ("edited", "Approve edited", "info"), ("rejected", "Reject", "danger"))}
    if not texts:
        buttons["edited"].disabled = True
    note = w.Text(placeholder="note (optional)", layout=w.Layout(width="60%"))
    shown = w.Output()
    box = w.VBox([head, body, editor, w.HBox([*buttons.values(), note]), shown])

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
                with shown:
                    display(result)
        return handler

    for name, button in buttons.items():
        button.on_click(on_click(name))
    return box
