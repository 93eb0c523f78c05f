"""What ``register`` and ``models --remote`` take beyond a model folder, shared by ``%genmagic``
and the ``genmagic`` command line: a served model's settings (``--model``, ``--api-key-env``,
``--server``, ``--setting KEY=VALUE``) and the listing of what a server offers."""

from __future__ import annotations

import argparse
from typing import Any

import tomllib

from .errors import OptionError
from .registry import get_backend, split_backend_url


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", dest="setting_model", metavar="NAME",
                        help="a served model's name on the server (with SOURCE = openai:http://host:port/v1)")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="the environment variable holding the server's API key (never the key itself)")
    parser.add_argument("--server", metavar="KIND", help="what the server honours beyond the OpenAI API: "
                        "openai (default), llama.cpp, vllm")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="another backend setting, e.g. read_timeout=300 (repeatable)")


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", metavar="URL",
                        help="list the models a server offers instead (its /v1/models), e.g. http://localhost:8000/v1")
    parser.add_argument("--api-key-env", metavar="VAR", help="with --remote: the variable holding the API key")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The backend settings given on a ``register`` line."""
    out: dict[str, Any] = {}
    for name, value in (("model", args.setting_model), ("api_key_env", args.api_key_env), ("server", args.server)):
        if value is not None:
            out[name] = value
    for item in args.setting:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--setting {item}: write KEY=VALUE, e.g. --setting read_timeout=300")
        try:  # a TOML value (300, true, "x"); anything else is text
            out[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = text
    return out


def remote_models(url: str, api_key_env: str | None = None) -> str:
    """What the server at ``[BACKEND:]URL`` offers, one model a line (backend: openai)."""
    name, url = split_backend_url(url)
    backend = get_backend(name or "openai")
    listing = getattr(backend, "list_models", None)
    if not callable(listing):
        raise OptionError(f"--remote: backend {name!r} cannot list a server's models; use openai:URL")
    models = listing(url, api_key_env)
    if not models:
        return f"{url}: no models"
    width = max(len(m["id"]) for m in models)
    lines = [f"{'model':<{width}}  owned by", *(f"{m['id']:<{width}}  {m['owned_by']}" for m in models)]
    return f"{url} serves {len(models)} model(s):\n" + "\n".join(lines)
