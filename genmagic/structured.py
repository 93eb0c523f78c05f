"""``--schema``: what a JSON output must look like, and the parsed value a run returns.

A schema comes as a JSON Schema dict, a pydantic model class or a dataclass type (from Python or a
notebook variable), or a ``.json`` file (the command line). :func:`schema_from` turns any of them
into a :class:`Schema`: the canonical JSON Schema (its text goes into the request's inputs, so it
is in the cache key) and the type the parsed output becomes (a pydantic instance, a dataclass
instance, else the plain JSON value). In-process models are constrained to it while they decode
(``backends/_grammar.py``); on the other paths the output is validated afterwards, and a
mismatch makes the run fail (``text_run.check_format``).

Nothing heavy at import time: pydantic, jsonschema and llguidance are imported when needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import OptionError, OutputFormatError

FLAG = "--schema"


@dataclass(frozen=True)
class Schema:
    """A JSON Schema and the Python type its instances become."""

    json_schema: dict[str, Any]
    target: Any = None  # a pydantic model class or a dataclass type; None: the plain JSON value
    name: str = ""  # what the user passed, for messages

    @property
    def canonical(self) -> str:
        """The schema as one stable text (sorted keys, no spaces): what enters the cache key."""
        return canonical(self.json_schema)

    def convert(self, data: Any) -> Any:
        """``data`` (parsed JSON) checked against the schema, as the target type; a mismatch is an
        :class:`OutputFormatError` naming the first problem."""
        if self.target is not None:
            from pydantic import TypeAdapter, ValidationError

            try:
                return TypeAdapter(self.target).validate_python(data)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "the top level"
                raise OutputFormatError(
                    f"the output does not match {self.label}: {where}: {first.get('msg', err)}"
                ) from None
        import jsonschema

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.json_schema).iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise OutputFormatError(f"the output does not match {self.label}: {where}: {error.message}")
        return data

    @property
    def label(self) -> str:
        return f"{FLAG} {self.name}" if self.name else f"the {FLAG} schema"


def canonical(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_from(value: Any, name: str = "") -> Schema:
    """A :class:`Schema` from a JSON Schema dict, a pydantic model class, a dataclass type, a
    :class:`Schema`, or the path of a ``.json`` file holding a schema; anything else is an
    :class:`OptionError` naming ``--schema``."""
    if isinstance(value, Schema):
        return value
    label = name or _describe(value)
    if isinstance(value, (str, os.PathLike)):
        return schema_from(_read_file(os.fspath(value)), name or os.fspath(value))
    if isinstance(value, Mapping):
        schema = dict(value)
        _check_dict(schema, label)
        return Schema(schema, None, name)
    name = name or getattr(value, "__name__", "")
    label = name or label
    if isinstance(value, type) and (dataclasses.is_dataclass(value) or hasattr(value, "model_json_schema")):
        try:
            from pydantic import TypeAdapter
        except ImportError:
            raise OptionError(f"{FLAG} {label}: a class as a schema needs pydantic: pip install pydantic") from None
        try:
            schema = TypeAdapter(value).json_schema()
        except Exception as err:  # pydantic's errors for types it cannot describe
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OptionError(f"{FLAG} {label}: cannot make a JSON Schema of this class: {first}") from None
        return Schema(schema, value, name)
    raise OptionError(
        f"{FLAG} takes a JSON Schema dict, a pydantic model class or a dataclass type (or a .json file); "
        f"got {name + ' = ' if name else ''}{_describe(value)}"
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise OptionError(f"{FLAG} {path!r}: no such file; pass a JSON Schema file (e.g. {FLAG} person.json)")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OptionError(f"{FLAG} {path!r} is not a JSON file: {err}") from None


# JSON Schema words the constrained decoder cannot enforce are named by the engine itself
# (llguidance refuses them unless told to be lenient); these only make sense inside a schema.
_SCHEMA_WORDS = {"type", "properties", "items", "$ref", "$defs", "definitions", "enum", "const", "anyOf",
                 "oneOf", "allOf", "required", "additionalProperties", "prefixItems", "pattern", "format"}


def _check_dict(schema: dict[str, Any], label: str) -> None:
    """A dict that is a JSON Schema (checked against its meta-schema), else a one-line error."""
    if schema and not (_SCHEMA_WORDS & set(schema)):
        raise OptionError(
            f"{FLAG} {label}: not a JSON Schema (none of type, properties, items, enum, $ref...); "
            'e.g. {"type": "object", "properties": {"name": {"type": "string"}}}'
        )
    try:
        import jsonschema
    except ImportError:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the top level"
        raise OptionError(f"{FLAG} {label} is not a valid JSON Schema: {where}: {err.message}") from None


def resolve(name: str, namespace: Mapping[str, Any] | None) -> Schema:
    """``--schema NAME`` on a magic line: a notebook variable, else a ``.json`` file."""
    if namespace is not None and name in namespace:
        return schema_from(namespace[name], name)
    if name.endswith(".json") or os.path.isfile(name):
        return schema_from(name)
    raise OptionError(
        f"{FLAG} {name!r}: no notebook variable or .json file of that name; define it first "
        "(a pydantic model class, a dataclass or a JSON Schema dict) or pass a file"
    )


def unsupported(schema: Schema) -> None:
    """Refuse, in one line, a schema with features the constrained decoder cannot enforce
    (the engine names them); a no-op when the engine is not installed."""
    try:
        from llguidance import LLMatcher
    except ImportError:
        return
    grammar = LLMatcher.grammar_from_json_schema(schema.json_schema)
    error = LLMatcher.validate_grammar(grammar)
    if error:
        line = " ".join(error.split())
        raise OptionError(f"{FLAG} {schema.name or 'schema'}: not supported for constrained decoding: {line}")
