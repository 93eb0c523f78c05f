"""``--schema`` on served models: sent as ``response_format`` json_schema, validated after the run;
a server that refuses it gets one clear line (fault server); the real llama.cpp server follows it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fault_server import FaultServer
from pydantic import BaseModel

from genmagic import options as o
from genmagic import text_run
from genmagic.backends.openai_compat import ServerError
from genmagic.engine import Engine


class Cat(BaseModel):
    name: str
    age: int


def served(url: str) -> Engine:
    engine = Engine()
    engine.registry.register("f", f"openai:{url}", settings={"model": "m1", "stream": False})
    return engine


def ask(engine: Engine, schema: Any) -> Any:
    return text_run.run(engine, "a cat", o.TextOptions(seed=1), o.TextControls(), model="f", schema=schema, given={"seed"})


def test_the_schema_travels_as_response_format_and_the_answer_is_validated(server: FaultServer) -> None:
    server.then("ok", '{"name": "Tom", "age": 3}').then("ok", '{"name": "Tom", "age": "old"}')
    result = ask(served(server.url), Cat)
    assert result.ok and result.value == Cat(name="Tom", age=3)
    sent = server.seen[0]["body"]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "output", "schema": Cat.model_json_schema()}}
    engine = served(server.url)
    bad = text_run.run(engine, "another cat", o.TextOptions(seed=1), o.TextControls(), model="f", schema=Cat,
                       given={"seed"})
    assert bad.status == "error" and bad.error.startswith("the output does not match --schema Cat: age:")
    assert engine.history.get(bad.history_id).status == "error"


def test_a_server_that_refuses_json_schema_says_so_in_one_line(server: FaultServer) -> None:
    server.then("status", 400, {}, {"error": {"message": "response_format type json_schema is unsupported"}})
    with pytest.raises(ServerError, match=rf"^the server at {server.url} refused --schema \(response_format json_schema, "
                                          r"answered 400: response_format type json_schema is unsupported\); leave --schema out"):
        ask(served(server.url), Cat)
    # plain -f json still sends json_object, and another 400 is not blamed on --schema
    server.then("status", 400, {}, {"error": {"message": "bad temperature"}})
    with pytest.raises(ServerError, match=r"answered 400: bad temperature$"):
        text_run.run(served(server.url), "x", o.TextOptions(seed=1), o.TextControls(format="json"), model="f",
                     given={"seed"})
    assert server.seen[-1]["body"]["response_format"] == {"type": "json_object"}


def test_speculate_is_refused_for_a_served_model(server: FaultServer) -> None:
    with pytest.raises(Exception, match="--speculate prompt-lookup cannot be sent to 'f'"):
        text_run.run(served(server.url), "x", o.TextOptions(speculate="prompt-lookup"), o.TextControls(), model="f",
                     given={"speculate"})


def test_the_llama_cpp_server_follows_the_schema(llama_server: Any) -> None:
    """llama-cpp-python takes the schema inside a json_object response_format; its grammar still lets
    a raw control character into a string now and then, which the check after the run catches."""
    engine = Engine()
    engine.registry.register("served", f"openai:{llama_server.url}", settings={"model": "tiny", "server": "llama.cpp"})
    results = [text_run.run(engine, "Describe a cat", o.TextOptions(seed=seed, max_new_tokens=60), o.TextControls(),
                            model="served", schema=Cat, given={"seed", "max_new_tokens"}) for seed in range(1, 7)]
    good = [r for r in results if r.ok]
    assert good and all(isinstance(r.value, Cat) and json.loads(r.text) == r.value.model_dump() for r in good)
    assert all(r.status == "error" and r.error.startswith("the output is not valid JSON") for r in results if not r.ok)
