"""Training data: read rows from a variable, a file or the cell body, pick the format, and turn
each row into token ids with a loss mask.

A row is a ``dict``. Sources: a pandas DataFrame (its records), a list of texts or of dicts,
a ``.txt`` file or the cell body (blocks separated by blank lines, or one example per line
when there is no blank line), ``.jsonl`` (one object per line), ``.csv`` and ``.parquet``
(pandas). Formats: ``text`` (the loss on every token), ``prompt-completion`` (the prompt
rendered the way ``%%generate`` sends it: a user turn of the chat template when the tokenizer
has one; the loss on the completion only) and ``chat`` (a list of ``{"role", "content"}``
rendered with the base model's chat template; the loss on the last turn).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError
from .options import FinetuneOptions

FILE_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")


class DataError(OptionError):
    """The training data cannot be used as given."""


def split_blocks(text: str) -> list[str]:
    """Examples from plain text: blocks separated by blank lines, else one per non-empty line."""
    lines = text.strip("\n").splitlines()
    if any(not line.strip() for line in lines):
        blocks, current = [], []
        for line in [*lines, ""]:
            if line.strip():
                current.append(line)
            elif current:
                blocks.append("\n".join(current))
                current = []
        return blocks
    return [line for line in lines if line.strip()]


def _records_of(obj: Any, where: str) -> list[dict[str, Any]]:
    """Rows of a DataFrame, a list of texts/dicts, or a single text."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a pandas DataFrame (not imported to check)
        return [dict(r) for r in obj.to_dict("records")]
    if isinstance(obj, str):
        return [{"text": t} for t in split_blocks(obj)]
    if isinstance(obj, Mapping):
        raise DataError(f"{where} is a dict; give a DataFrame, a list of texts or a list of dicts (one per example)")
    if isinstance(obj, Sequence) or hasattr(obj, "__iter__"):
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(obj):
            if isinstance(item, str):
                rows.append({"text": item})
            elif isinstance(item, Mapping):
                rows.append(dict(item))
            elif isinstance(item, (list, tuple)) and item and all(isinstance(m, Mapping) for m in item):
                rows.append({"messages": list(item)})  # a list of conversations
            else:
                raise DataError(f"{where}[{i}] is {type(item).__name__}; each example must be a text or a dict")
        return rows
    raise DataError(f"{where} is {type(obj).__name__}; give a DataFrame, a list of texts or dicts, or a file path")


def _read_file(path: str) -> list[dict[str, Any]]:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            return [{"text": t} for t in split_blocks(f.read())]
    if suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"--data {path}: line {n} is not JSON ({err.msg})") from None
                rows.append(value if isinstance(value, dict) else {"text": value} if isinstance(value, str) else
                            {"messages": value})
        return rows
    try:
        import pandas as pd
    except ImportError:
        raise DataError(f"--data {path}: reading {suffix} needs pandas: pip install 'genmagic[finetune]'") from None
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except ImportError as err:
        raise DataError(f"--data {path}: {str(err).splitlines()[0]}") from None
    return _records_of(frame, path)


def load_rows(source: Any, namespace: Mapping[str, Any] | None = None, cell: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """``(rows, where)``: the rows of a variable name, a file path, an object, or the cell body."""
    if source is None:
        if cell is None or not cell.strip():
            raise DataError("no training data: write examples in the cell below the magic line, or give --data "
                            "VAR (a DataFrame or a list) or --data FILE (.txt, .jsonl, .csv, .parquet)")
        return _records_of(cell, "the cell"), "the cell"
    if isinstance(source, str):
        if namespace is not None and source.isidentifier() and source in namespace:
            return _records_of(namespace[source], source), source
        path = os.path.expanduser(source)
        if os.path.isfile(path):
            if not path.lower().endswith(FILE_SUFFIXES):
                raise DataError(f"--data {source}: unknown file type; use {', '.join(FILE_SUFFIXES)}")
            return _read_file(path), source
        if source.isidentifier():
            raise DataError(f"--data {source}: no such variable or file; define {source} first, or give a path")
        raise DataError(f"--data {source}: no such file; give a {', '.join(FILE_SUFFIXES)} file or a variable name")
    return _records_of(source, "data"), "the data"


def pick_format(rows: list[dict[str, Any]], options: FinetuneOptions, where: str) -> str:
    """The format of the rows (``--format``, or from the columns), with their columns checked."""
    if not rows:
        raise DataError(f"{where} has no examples; give at least one")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    fmt = options.format
    if fmt == "auto":
        if options.messages_column in columns:
            fmt = "chat"
        elif options.prompt_column in columns and options.completion_column in columns:
            fmt = "prompt-completion"
        else:
            fmt = "text"
    needed = {"text": [("--text-column", options.text_column)],
              "prompt-completion": [("--prompt-column", options.prompt_column),
                                    ("--completion-column", options.completion_column)],
              "chat": [("--messages-column", options.messages_column)]}[fmt]
    for flag, column in needed:
        if column not in columns:
            raise DataError(f"{flag} {column}: no such column in {where}; its columns are {', '.join(map(str, columns))}")
    return fmt


def text_fields(row: Mapping[str, Any], fmt: str, options: FinetuneOptions) -> list[tuple[str, str]]:
    """``(field, text)`` of each piece of text a row trains on (what the PII scan reads)."""
    if fmt == "text":
        return [(options.text_column, _str(row.get(options.text_column)))]
    if fmt == "prompt-completion":
        return [(options.prompt_column, _str(row.get(options.prompt_column))),
                (options.completion_column, _str(row.get(options.completion_column)))]
    return [(f"{options.messages_column}[{i}]", _str(m.get("content"))) for i, m in enumerate(_messages(row, options))]


def replace_texts(row: Mapping[str, Any], fmt: str, options: FinetuneOptions, change: Any) -> dict[str, Any]:
    """A copy of ``row`` with ``change(text)`` applied to each text it trains on."""
    out = dict(row)
    if fmt == "text":
        out[options.text_column] = change(_str(row.get(options.text_column)))
    elif fmt == "prompt-completion":
        for column in (options.prompt_column, options.completion_column):
            out[column] = change(_str(row.get(column)))
    else:
        out[options.messages_column] = [{**m, "content": change(_str(m.get("content")))} for m in _messages(row, options)]
    return out


def _str(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # a missing cell (NaN)
        return ""
    return str(value)


def _messages(row: Mapping[str, Any], options: FinetuneOptions) -> list[Mapping[str, Any]]:
    value = row.get(options.messages_column)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, list) or not all(isinstance(m, Mapping) and "role" in m for m in value):
        raise DataError(f"--messages-column {options.messages_column}: each value must be a list of "
                        '{"role": ..., "content": ...} messages')
    return value


@dataclass
class Encoded:
    """The training examples as token ids, with the loss mask (-100 = no loss)."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # what a sample generation starts from (shown)
    prompt_ids: list[list[int]] = field(default_factory=list)  # its token ids, as generation sends them
    references: list[str] = field(default_factory=list)  # what the example continues with
    truncated: int = 0
    skipped: int = 0  # rows with no text

    def __len__(self) -> int:
        return len(self.input_ids)


def generation_ids(tokenizer: Any, prompt: str, *, raw: bool) -> list[int]:
    """The token ids ``%%generate`` sends for ``prompt`` (``--raw`` or not): the transformers
    backend's own ``encode``, so training starts each example exactly where generation will
    (the same BOS, the same chat template)."""
    from ..backends.transformers_text import TransformersTextBackend, _TextModel
    from ..options import TextOptions
    from ..request import Request

    request = Request(kind="text", prompt=prompt, model="", options=TextOptions(raw=raw))
    return TransformersTextBackend().encode(_TextModel(model=None, tokenizer=tokenizer, context=0), request)


def encode(rows: list[dict[str, Any]], fmt: str, options: FinetuneOptions, tokenizer: Any, *, strict: bool) -> Encoded:
    """Token ids and labels of each row; an example longer than ``--max-length`` is truncated
    (counted in ``truncated``) or, with ``strict``, an error naming the row.

    The part before the loss is what generation sends: ``text`` = the ``--raw`` prompt (the
    tokenizer's special tokens, e.g. BOS, then the text; the loss on the text),
    ``prompt-completion`` = the prompt as ``%%generate`` sends it (a user turn of the chat
    template, else the plain prompt with its BOS), ``chat`` = the earlier turns rendered by the
    template with the generation prompt (as a chat turn is sent)."""
    out = Encoded()
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    templated = bool(getattr(tokenizer, "chat_template", None))
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    for i, row in enumerate(rows):
        if fmt == "text":
            text = _str(row.get(options.text_column))
            prompt, completion = "", text
            if not completion.strip():
                out.skipped += 1
                continue
            full = generation_ids(tokenizer, text, raw=True)
            lead = next((k for k, t in enumerate(full) if t not in specials), len(full))
            trail = len(full)
            while trail > lead and full[trail - 1] in specials:  # a tokenizer that appends EOS itself
                trail -= 1
            head, tail = full[:lead], full[lead:trail] + eos
        else:
            if fmt == "prompt-completion":
                user = _str(row.get(options.prompt_column))
                completion = _str(row.get(options.completion_column))
                head = generation_ids(tokenizer, user, raw=False)
                prompt = user
            else:
                messages = [{"role": str(m["role"]), "content": _str(m.get("content"))} for m in _messages(row, options)]
                if not templated:
                    raise DataError(f"--format chat: {options.base} has no chat template; use --format text or "
                                    "prompt-completion")
                prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False) \
                    if len(messages) > 1 else ""
                full_text = tokenizer.apply_chat_template(messages, tokenize=False)
                completion = full_text[len(prompt):] if full_text.startswith(prompt) else full_text
                prompt = prompt if full_text.startswith(prompt) else ""
                head = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
            if not completion.strip():
                out.skipped += 1
                continue
            tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + eos
        ids, labels = head + tail, [-100] * len(head) + tail
        if len(ids) > options.max_length:
            if strict:
                raise DataError(f"example {i} is {len(ids)} tokens, over --max-length {options.max_length}; "
                                "raise --max-length, shorten it, or leave out --strict to truncate")
            out.truncated += 1
            ids, labels = ids[: options.max_length], labels[: options.max_length]
            if all(label == -100 for label in labels):  # the prompt alone fills the window
                out.skipped += 1
                continue
        out.input_ids.append(ids)
        out.labels.append(labels)
        if fmt == "text":
            cut = _cut(completion)
            out.prompts.append(completion[:cut])
            out.prompt_ids.append(generation_ids(tokenizer, completion[:cut], raw=True))
            out.references.append(completion[cut:])
        else:
            out.prompts.append(prompt)
            out.prompt_ids.append(list(head))
            out.references.append(completion)
    if not out.input_ids:
        raise DataError("the training data has no example with text to learn; check --text-column / --format")
    return out


def _cut(text: str) -> int:
    """Where a text example's sample prompt ends: the first space after a third of it."""
    space = text.find(" ", max(1, len(text) // 3))
    return space if space > 0 else max(1, len(text) // 3)


def fingerprint(encoded: Encoded) -> str:
    """A hash of exactly what training sees (token ids and loss masks)."""
    h = hashlib.sha256()
    for ids, labels in zip(encoded.input_ids, encoded.labels):
        h.update(json.dumps([ids, labels], separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
