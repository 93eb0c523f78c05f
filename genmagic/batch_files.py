"""``genmagic generate --over FILE``: a table in (CSV, JSON Lines, Parquet), the same table out with
the outputs as a column (``output``; one column per key when every output is a JSON object), in
the format ``-o``'s extension names (CSV on stdout without ``-o``). Parquet needs pyarrow
(``pip install 'genmagic[tables]'``)."""

from __future__ import annotations

import os
import sys
from typing import Any

from .errors import OptionError

FORMATS = (".csv", ".jsonl", ".parquet")


def _format(path: str, flag: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".ndjson":
        ext = ".jsonl"
    if ext not in FORMATS:
        raise OptionError(f"{flag} {path}: the extension says the format; use {', '.join(FORMATS)}")
    if ext == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OptionError(f"{flag} {path}: Parquet needs pyarrow: pip install 'genmagic[tables]'") from None
    return ext


def read_table(path: str) -> Any:
    import pandas as pd

    ext = _format(path, "--over")
    if not os.path.isfile(path):
        raise OptionError(f"--over {path}: no such file; give a .csv, .jsonl or .parquet file")
    try:
        if ext == ".csv":
            return pd.read_csv(path)
        if ext == ".jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_parquet(path)
    except (ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OptionError(f"--over {path}: cannot read it as {ext[1:]} ({first})") from None


def write_table(frame: Any, path: str | None) -> None:
    if path is None:
        frame.to_csv(sys.stdout, index=False)
        return
    ext = _format(path, "-o")
    if ext == ".csv":
        frame.to_csv(path, index=False)
    elif ext == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)


def cmd_generate_over(args: Any) -> int:
    """The CLI's ``generate --over FILE``: the rows' summary and the progress bar on stderr."""
    from . import options as opts
    from .batch import default_template, run_over
    from .engine import default_engine

    if args.output is not None:
        _format(args.output, "-o")  # before any row runs: an unwritable format would lose every output
    frame = read_table(args.over)
    controls = opts.from_namespace(opts.TextControls, {**vars(args), "over": None, "out_column": "output"})
    options = opts.from_namespace(opts.TextOptions, args)
    template = " ".join(args.prompt) if args.prompt else default_template(frame, args.column)
    batch = run_over(default_engine(), "text", template, frame, options, controls, namespace={},
                     given=opts.given(args, opts.TextOptions), name=args.over)
    write_table(batch.value, args.output)
    if batch.summary():
        print(f"genmagic: {batch.summary()}", file=sys.stderr)
    if batch.interrupted:
        return 130
    return 1 if batch.errors else 0
