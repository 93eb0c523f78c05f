"""The command line: ``genmagic generate | imagine | finetune | check | models | register | history | show | safety | presets | trust``.

Options come from the same definitions as the magics (:mod:`genmagic.options`).
User mistakes print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from . import options as opts
from .errors import BlockedError, GenmagicError, OutputFormatError, on_command_line


def _read_prompt(words: Sequence[str]) -> str:
    """The prompt: the words, or stdin (``-`` or a pipe) without its final newline(s), so
    ``echo x | genmagic generate -`` is the same request (and cache key) as ``genmagic generate x``."""
    if list(words) == ["-"] or (not words and not sys.stdin.isatty()):
        return sys.stdin.read().rstrip("\r\n")
    return " ".join(words)


def _exit_code(result: Any, kept: str) -> int:
    """The shared end of a run on the command line: the safety verdicts on stderr; 130 if
    interrupted, 3 if a safety check withheld outputs (blocked, or held for review)."""
    from .display import safety_line

    safety = safety_line(result)
    if safety:
        print(f"genmagic: safety: {safety}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"genmagic: interrupted; {kept} kept in history #{result.history_id}", file=sys.stderr)
        return 130
    if result.status == "review":
        print(f"genmagic: held for review; decide with: genmagic safety approve {result.history_id} "
              f"(or reject)", file=sys.stderr)
        return 3
    if result.withheld:
        print(f"genmagic: {len(result.withheld)} output(s) withheld by a safety check (kept in history "
              f"#{result.history_id}); --safety warn shows them", file=sys.stderr)
        return 3
    return 0


def _shown_texts(result: Any) -> list[str]:
    from .display import withheld_text

    return [withheld_text(result.withheld[i][1], result.status) if i in result.withheld else t
            for i, t in enumerate(result.texts)]


def cmd_generate(args: argparse.Namespace) -> int:
    if args.over:  # one run per row of a table file
        from .batch_files import cmd_generate_over

        return cmd_generate_over(args)
    from . import text_run
    from .engine import default_engine
    from .sinks import StreamSink

    controls = opts.from_namespace(opts.TextControls, args)
    options = opts.from_namespace(opts.TextOptions, args)
    prompt = _read_prompt(args.prompt)
    if not prompt.strip():
        raise GenmagicError("the prompt is empty: pass it as an argument, or '-' to read it from stdin")
    if controls.compare:  # labelled blocks, one per cell
        from .compare import cli

        return cli("text", prompt, options, controls, opts.given(args, opts.TextOptions), None)
    # Streamed only to a terminal: into a file or a pipe the text goes once every check has passed it
    # (stderr still shows the model loading).
    stream = controls.stream and sys.stdout.isatty()
    sink = StreamSink(num=options.num, tokens=stream)
    result = text_run.run(default_engine(), prompt, options, controls, sink=sink,
                          given=opts.given(args, opts.TextOptions))
    parsed = result.format == "json" and result.ok  # type: ignore[attr-defined]
    if (not stream or result.cached) and not parsed:  # -f json / --schema: one JSON document, below
        sys.stdout.write("\n\n".join(_shown_texts(result)) + "\n")
    sink.close(result.ok)
    if result.status == "error":  # -f json that does not parse: the raw text is above and in history
        raise OutputFormatError(f"{result.error} (history #{result.history_id})")
    if parsed:
        import json

        print(json.dumps(result.json(), indent=2, ensure_ascii=False))  # type: ignore[attr-defined]
    return _exit_code(result, "partial text")


def cmd_imagine(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from . import image_run as im
    from .engine import default_engine
    from .results import write_atomic
    from .sinks import TerminalImageSink

    controls = opts.from_namespace(opts.ImageControls, args)
    options = opts.from_namespace(opts.ImageOptions, args)
    prompt = _read_prompt(args.prompt) if args.prompt or not controls.from_image else ""
    if not prompt.strip() and not controls.from_image:
        raise GenmagicError("the prompt is empty: pass it as an argument, '-' to read it from stdin, or --from IMAGE.png")
    given = opts.given(args, opts.ImageOptions)
    if controls.compare:  # one labelled grid PNG
        from .compare import cli

        return cli("image", prompt, options, controls, given, args.output)
    num = options.num  # with --from, 1 unless typed (the PNG holds one image)
    paths = im.output_paths(args.output, num) if args.output else []  # a wrong -o fails before the run
    sink = TerminalImageSink(num) if controls.stream else None
    result = im.run(default_engine(), prompt, options, controls, sink=sink, given=given)
    if sink is not None:
        sink.close(result.ok)
    written: list[str] = []
    if args.output and result.images:
        if paths:
            for index, path in enumerate(paths[: len(result.images)]):
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                write_atomic(Path(path), result.png(index))  # through a temporary file: never half-written
                written.append(path)
        else:
            written += [str(p) for p in result.save(args.output)]
    written += result.info.get("saved", [])
    for path in written:
        print(path)
    if not written:
        print(f"genmagic: {len(result.images)} image(s) in history #{result.history_id}; pass -o out.png to write them",
              file=sys.stderr)
    return _exit_code(result, "the last preview")


def cmd_check(args: argparse.Namespace) -> int:
    """Check texts the way runs are checked: one JSON line per text on stdout (or ``-o``)."""
    import json

    from .safety import check_texts

    if args.jsonl:
        ids, texts = _read_jsonl(args.jsonl)
    else:
        text = _read_prompt(args.text)
        if not text.strip():
            raise GenmagicError("nothing to check: pass the text, '-' (or a pipe) for stdin, or --jsonl FILE")
        ids, texts = [None], [text]
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    blocked = 0
    try:
        for start in range(0, len(texts), 64):
            for rid, found in zip(ids[start:start + 64], check_texts(texts[start:start + 64], args.level), strict=True):
                blocked += not found.allowed
                out.write(json.dumps(found.to_dict(rid), ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.jsonl:
        print(f"genmagic: {len(texts)} text(s) checked, {blocked} not allowed at level {args.level}", file=sys.stderr)
    return 0 if args.jsonl or not blocked else 3


def _read_jsonl(path: str) -> tuple[list[Any], list[str]]:
    """``{"id": ..., "text": ...}`` per line; a bad line is an error naming the file and line."""
    import json

    ids: list[Any] = []
    texts: list[str] = []
    try:
        fh = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as err:
        raise GenmagicError(f"--jsonl {path}: {err.strerror or err}") from None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise GenmagicError(f"{path}:{number}: not JSON ({err.msg}); each line must be "
                                    '{"id": ..., "text": "..."}') from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise GenmagicError(f'{path}:{number}: each line must be an object with a "text" string, '
                                    'e.g. {"id": 1, "text": "..."}')
            ids.append(row.get("id", number))
            texts.append(row["text"])
    return ids, texts


def cmd_safety(args: argparse.Namespace) -> int:
    from .engine import default_engine
    from .history_view import history_rows_table, verdict_table
    from .safety import review

    engine = default_engine()
    if args.action == "log":
        print(repr(verdict_table(engine.history, n=args.n)))
    elif args.action == "review":
        print(repr(history_rows_table(review.pending(engine))))
    else:
        if args.id is None:
            raise GenmagicError(f"genmagic safety {args.action} needs a history id, e.g. genmagic safety {args.action} 12")
        getattr(review, args.action)(args.id, note=args.note, engine=engine)
        print(f"run #{args.id}: {args.action}d")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .display import models_table
    from .engine import default_engine

    if args.remote:
        from .register_args import remote_models

        print(remote_models(args.remote, args.api_key_env))
        return 0
    registry = default_engine().registry
    print(repr(models_table(registry.specs(), {kind: registry.default(kind) for kind in ("text", "image")})))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from .register_args import settings_from_args
    from .registry import Registry

    spec = Registry().register(args.alias, args.source, kind=args.kind, backend=args.backend, adapters=args.adapter,
                               persist=True, settings=settings_from_args(args))
    print(f"registered {spec.alias}: {spec.kind} model via {spec.backend} from {spec.source} (saved in the user config)")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .engine import default_engine
    from .history_view import history_table

    history = default_engine().history
    if args.json:
        import json
        from dataclasses import asdict

        from .history_view import public_record

        records = history.list(n=args.n, search=args.search, kind=args.kind)
        rows = [asdict(r) if args.include_withheld else public_record(r) for r in records]
        for row in rows:
            row["decisions"] = history.decisions(row["id"])
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(repr(history_table(history, n=args.n, search=args.search, kind=args.kind)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .engine import default_engine
    from .history_view import result_from_history

    result = result_from_history(default_engine().history, args.id)
    if getattr(result, "texts", None) is not None:
        print("\n\n".join(_shown_texts(result)))
    else:
        print(repr(result))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import table
    from .registry import Registry

    print(repr(table(args.kind, Registry())))
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from .registry import Registry
    from .trust import trust_command

    print(trust_command(args.path, Registry()))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .tuning.options import FinetuneControls, FinetuneOptions
    from .tuning.run import run

    result = run(args.name, opts.from_namespace(FinetuneOptions, args), opts.from_namespace(FinetuneControls, args))
    print(result.adapter)
    return 130 if result.stopped == "interrupted" else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .register_args import add_remote_arguments, add_setting_arguments

    parser = argparse.ArgumentParser(prog="genmagic", description="Generative AI from the command line.")
    parser.add_argument("--version", action="version", version=f"genmagic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        help="generate text (streams to stdout)",
        description="Generate text. Options left out take the model's own defaults (generation_config.json, "
        "then the registry's params) before the defaults shown.",
    )
    gen.add_argument("prompt", nargs="*", help="the prompt; '-' or a pipe reads stdin")
    opts.add_arguments(gen, opts.TextOptions, opts.TextControls)
    gen.add_argument("--over", metavar="FILE", help="run once per row of a .csv, .jsonl or .parquet file: "
                     "{column} in the prompt is filled per row; writes the table with an output column")
    gen.add_argument("--column", metavar="NAME", help="with --over and no prompt: this column is the prompt")
    gen.add_argument("-o", dest="output", metavar="PATH", help="with --over: write the table here "
                     "(.csv, .jsonl, .parquet; default: CSV on stdout)")
    gen.set_defaults(func=cmd_generate)

    img = sub.add_parser("imagine", help="generate images (a progress bar on stderr; -o writes PNGs)")
    img.add_argument("prompt", nargs="*", help="the prompt; '-' or a pipe reads stdin")
    img.add_argument("-o", "--output", metavar="PATH",
                     help="write the PNG(s) here: out.png for one image; out-1.png ... out-N.png with -n N "
                     "(out-01.png ... from 10); a folder/ keeps names from the prompt, seed and key. "
                     "Every path written is printed on stdout, one per line")
    opts.add_arguments(img, opts.ImageOptions, opts.ImageControls)
    img.set_defaults(func=cmd_imagine)

    from .tuning.options import FinetuneControls, FinetuneOptions

    tune = sub.add_parser("finetune", help="train a LoRA adapter on a data file and register it as a model alias",
                          description="Train a LoRA adapter (progress on stderr; the adapter folder on stdout) and "
                          "register NAME (base + adapter) in the user config.")
    tune.add_argument("name", help="the alias of the fine-tuned model")
    opts.add_arguments(tune, FinetuneOptions, FinetuneControls)
    tune.set_defaults(func=cmd_finetune)

    check = sub.add_parser(
        "check", help="check texts for PII and unsafe content (one JSON line per text)",
        description='Check texts the way genmagic checks prompts: one JSON line per text with "allowed", '
        '"action", "categories", "pii" (type, start, end) and "redacted". Exit status 3 when a single text '
        "is not allowed.")
    check.add_argument("text", nargs="*", help="the text; '-' or a pipe reads stdin")
    check.add_argument("--jsonl", metavar="FILE", help='check every line {"id": ..., "text": ...} of FILE (- for stdin)')
    check.add_argument("--level", default="standard", choices=("off", "warn", "standard", "strict"))
    check.add_argument("-o", "--output", metavar="FILE", help="write the JSON lines here instead of stdout")
    check.set_defaults(func=cmd_check)

    safety = sub.add_parser("safety", help="recent safety verdicts, and the outputs held for review")
    safety.add_argument("action", choices=("log", "review", "approve", "reject"))
    safety.add_argument("id", nargs="?", type=int, help="the history id to approve or reject")
    safety.add_argument("-n", type=int, default=20, help="how many rows 'log' shows")
    safety.add_argument("--note", help="a note kept with the decision")
    safety.set_defaults(func=cmd_safety)

    models = sub.add_parser("models", help="list the registered models (or a server's, with --remote URL)")
    add_remote_arguments(models)
    models.set_defaults(func=cmd_models)

    reg = sub.add_parser("register", help="add a model alias to the user config file",
                         description="Add a model alias to the user config file (what %%genmagic register --save does).")
    reg.add_argument("alias")
    reg.add_argument("source", help="a local folder, a hub id, or a served model: openai:http://host:port/v1")
    reg.add_argument("--adapter", action="append", default=[], help="a LoRA adapter folder (repeatable)")
    reg.add_argument("--kind", choices=("text", "image"))
    reg.add_argument("--backend")
    add_setting_arguments(reg)
    reg.set_defaults(func=cmd_register)

    hist = sub.add_parser("history", help="show recent runs")
    hist.add_argument("-n", type=int, default=20, help="how many (default: 20)")
    hist.add_argument("--search", help="only runs whose prompt or output contains this text")
    hist.add_argument("--kind", choices=("text", "image"))
    hist.add_argument("--json", action="store_true", help="print the full records as JSON (with review decisions)")
    hist.add_argument("--include-withheld", action="store_true",
                      help="with --json: also print the outputs a safety check withheld")
    hist.set_defaults(func=cmd_history)

    show = sub.add_parser("show", help="print the output of one run in history")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_show)

    presets = sub.add_parser("presets", help="list the style (image) and tone (text) presets")
    presets.add_argument("kind", nargs="?", choices=("text", "image"))
    presets.set_defaults(func=cmd_presets)

    trust = sub.add_parser("trust", help="trust a project genmagic.toml, so it may turn on trust_remote_code/allow_pickle")
    trust.add_argument("path", nargs="?", help="the file (default: the genmagic.toml found from here upwards)")
    trust.set_defaults(func=cmd_trust)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = opts.parse_args(parser, sys.argv[1:] if argv is None else argv)
    try:
        with on_command_line():  # messages name `genmagic history`, not `%genmagic history`
            return int(args.func(args))
    except BlockedError as err:  # not a usage mistake: the safety policy said no (as a withheld output)
        print(f"genmagic: {err}", file=sys.stderr)
        return 3
    except GenmagicError as err:
        print(f"genmagic: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genmagic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
