"""The remote backend when the server misbehaves: a small local endpoint (tests/fault_server.py)
that is slow, rate limits with Retry-After, fails with 5xx, sends malformed JSON or drops the
connection mid-stream. The real engine is tested in test_remote_engine.py."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from fault_server import FaultServer

from genmagic import image_run, text_run
from genmagic import options as o
from genmagic.backends.openai_compat import ServerError
from genmagic.engine import Engine
from genmagic.errors import ModelNotFoundError, OptionError
from genmagic.registry import get_backend
from genmagic.request import ListSink


def served(url: str, alias: str = "f", **settings: Any) -> Engine:
    engine = Engine()
    engine.registry.register(alias, f"openai:{url}", settings={"model": "m1", **settings})
    return engine


def generate(engine: Engine, sink: Any = None, model: str = "f", **options: Any) -> Any:
    return text_run.run(engine, "hi", o.TextOptions(**options), o.TextControls(), model=model, sink=sink,
                        given=set(options))


def test_429_waits_as_long_as_retry_after_says(server: FaultServer) -> None:
    server.then("status", 429, {"Retry-After": "1"}).then("ok", "after the wait")
    result = generate(served(server.url, stream=False))
    assert result.text == "after the wait" and len(server.seen) == 2
    assert server.seen[1]["time"] - server.seen[0]["time"] >= 0.95  # the server's Retry-After, not a shorter backoff


def test_5xx_is_retried_then_a_one_line_error(server: FaultServer) -> None:
    server.then("status", 503).then("ok", "second try")
    assert generate(served(server.url, stream=False, max_retries=1)).text == "second try"
    for _ in range(3):
        server.then("status", 500, {}, {"error": {"message": "engine on fire\nstack..."}})
    with pytest.raises(ServerError, match=rf"^the server at {server.url} answered 500 \(after 2 retries\): engine on fire$"):
        generate(served(server.url, alias="g", max_retries=2), model="g")
    assert len(server.seen) == 2 + 3


def test_rate_limited_for_good(server: FaultServer) -> None:
    server.then("status", 429, {"Retry-After": "0.1"}).then("status", 429, {"Retry-After": "0.1"})
    with pytest.raises(ServerError, match=r"still rate limiting \(429\) after 1 retries"):
        generate(served(server.url, max_retries=1))


def test_a_slow_server_times_out_with_the_setting_to_raise(server: FaultServer) -> None:
    server.then("slow", 3)
    with pytest.raises(ServerError, match=r"did not answer in time .*read_timeout 0\.5 s.*raise read_timeout"):
        generate(served(server.url, read_timeout=0.5, max_retries=0))


def test_malformed_answers(server: FaultServer) -> None:
    server.then("malformed")
    with pytest.raises(ServerError, match=f"the server at {server.url} sent a malformed answer"):
        generate(served(server.url, stream=False, max_retries=0))
    server.then("garble", ["Hello", " there"])
    sink = ListSink()
    result = generate(served(server.url, alias="g"), sink=sink, model="g")
    assert result.status == "error" and "malformed stream after 2 tokens" in result.error
    assert result.text == "Hello there"  # the partial text is kept


def test_a_dropped_connection_keeps_the_partial_text(server: FaultServer) -> None:
    server.then("drop", ["Once", " upon", " a"])
    engine = served(server.url)
    result = generate(engine, sink=ListSink())
    assert result.status == "error" and result.text == "Once upon a"
    assert f"the server at {server.url} dropped the stream after 3 tokens" in result.error
    assert engine.history.get(result.history_id).outputs["texts"] == ["Once upon a"]


def test_connection_refused_names_the_url() -> None:
    from conftest_engines import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError, match=f"cannot connect to {url} .*is the server running\\? check base_url of 'f'"):
        generate(served(url, max_retries=0))


def test_a_404_model_lists_the_servers_models(server: FaultServer) -> None:
    server.then("status", 404, {}, {"error": {"message": "model not found"}})
    engine = served(server.url, stream=False)
    engine.registry.register("f", f"openai:{server.url}", settings={"model": "m3", "stream": False})
    with pytest.raises(ModelNotFoundError, match="has no model 'm3' \\(alias 'f'\\); it offers: m1, m2"):
        generate(engine)


def test_the_key_travels_in_the_header_only(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-FAULT-key-123456"
    monkeypatch.setenv("FAULT_KEY", key)
    server.then("ok", "fine").then("status", 401).then("status", 400, {}, {"error": {"message": f"bad key {key}"}})
    engine = served(server.url, api_key_env="FAULT_KEY", stream=False)
    assert generate(engine, seed=1).ok
    assert server.seen[0]["headers"]["authorization"] == f"Bearer {key}"
    assert key not in str(server.seen[0]["body"])
    with pytest.raises(ServerError, match=r"refused access \(401\); set the environment variable FAULT_KEY") as e401:
        generate(engine, seed=2)
    with pytest.raises(ServerError, match=r"answered 400: bad key \*\*\*") as e400:  # an echoed key is masked
        generate(engine, seed=3)
    assert key not in str(e401.value) + str(e400.value)


def test_options_the_server_cannot_honour_are_errors(server: FaultServer) -> None:
    engine = served(server.url, stream=False)
    with pytest.raises(OptionError, match=r"--top-k 40 cannot be sent to 'f'.*server = \"llama\.cpp\""):
        generate(engine, top_k=40)
    with pytest.raises(OptionError, match=r"--repetition-penalty 1\.3 cannot be sent"):
        generate(engine, repetition_penalty=1.3)
    with pytest.raises(OptionError, match="--device cuda cannot be sent"):
        generate(engine, device="cuda")
    generate(engine, seed=4, max_new_tokens=7, temperature=0.5, top_p=0.5, stop=("\n",))
    body = server.seen[-1]["body"]
    assert body["seed"] == 4 and body["max_tokens"] == 7 and body["temperature"] == 0.5 and body["top_p"] == 0.5
    assert body["stop"] == ["\n"] and "top_k" not in body and "repeat_penalty" not in body
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    llama = served(server.url, alias="l", stream=False, server="llama.cpp")
    generate(llama, model="l", top_k=40, repetition_penalty=1.3, raw=True)
    body = server.seen[-1]["body"]
    assert body["top_k"] == 40 and body["repeat_penalty"] == 1.3 and body["prompt"] == "hi"


def test_a_plain_openai_server_is_never_cached(server: FaultServer) -> None:
    engine = served(server.url, stream=False)
    assert not generate(engine, seed=9).cached and not generate(engine, seed=9).cached
    trusted = served(server.url, alias="t", stream=False, seed_honoured=True)
    generate(trusted, seed=9, model="t")
    assert generate(trusted, seed=9, model="t").cached


def test_images_from_a_server_that_has_them(server: FaultServer) -> None:
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png, format="PNG")
    server.then("image", base64.b64encode(png.getvalue()).decode())
    engine = Engine()
    engine.registry.register("painter", f"openai:{server.url}", kind="image", settings={"model": "m1"})
    result = image_run.run(engine, "a red square", o.ImageOptions(width=8, height=8), o.ImageControls(),
                           model="painter", given={"width", "height"})
    assert result.ok and result.images[0].getpixel((0, 0)) == (200, 10, 10)
    assert server.seen[-1]["path"] == "/v1/images/generations" and server.seen[-1]["body"]["size"] == "8x8"
    with pytest.raises(OptionError, match="--steps 30 cannot be sent to 'painter'"):
        image_run.run(engine, "x", o.ImageOptions(steps=30), o.ImageControls(), model="painter", given={"steps"})


def test_the_magic_shows_the_partial_text_of_a_dropped_stream(ip: Any, server: FaultServer) -> None:
    from conftest import run
    from IPython.core.error import UsageError

    server.then("drop", ["Once", " upon"])
    run(ip, f"%genmagic register f openai:{server.url} --model m1")
    with pytest.raises(UsageError, match=f"the server at {server.url} dropped the stream after 2 tokens"):
        run(ip, "%%generate -m f --out t_partial\nhi")
    assert ip.user_ns["t_partial"].text == "Once upon" and ip.user_ns["t_partial"].status == "error"


def seeded(server: FaultServer, alias: str = "f", **settings: Any) -> Engine:
    """A streaming alias whose seeded runs are cached, already loaded (its identity known)."""
    engine = served(server.url, alias, server="llama.cpp", **settings)
    server.then("stream", ["warm"])
    assert generate(engine, model=alias, seed=100).ok
    return engine


def test_a_stream_that_ends_without_a_finish_is_an_error_and_never_cached(server: FaultServer) -> None:
    engine = seeded(server)
    server.then("cut", ["Once", " upon"])  # the body ends at the connection's close: no finish, no [DONE]
    result = generate(engine, sink=ListSink(), seed=1)
    assert result.status == "error" and result.text == "Once upon"
    assert f"the server at {server.url} ended the stream without finishing the answer after 2 tokens" in result.error
    server.then("stream", ["Once upon a time"])
    again = generate(engine, seed=1)
    assert again.ok and not again.cached and again.text == "Once upon a time" and len(server.seen) == 3
    server.then("html")  # a web page answering a streamed request
    with pytest.raises(ServerError, match=f"^the server at {server.url} answered a streamed request with text/html"):
        generate(engine, seed=2)
    server.then("stream", ["fine"])
    assert not generate(engine, seed=2).cached and len(server.seen) == 5


def test_a_final_chunk_without_delta_ends_a_complete_answer(server: FaultServer) -> None:
    server.then("nodelta", ["Hello", " there"])
    result = generate(served(server.url))
    assert result.ok and result.text == "Hello there" and result.info["finish_reason"] == ["stop"]


def vllm_models() -> tuple[int, str, bytes]:
    """vLLM's /v1/models: a fresh permission id and time on every request."""
    import json
    import time
    import uuid

    entry = {"id": "m1", "object": "model", "created": int(time.time() * 1000), "owned_by": "vllm", "root": "org/m1",
             "parent": None, "max_model_len": 4096,
             "permission": [{"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
                             "created": int(time.time() * 1000), "allow_sampling": True}]}
    return 200, "application/json", json.dumps({"object": "list", "data": [entry]}).encode()


def test_a_vllm_identity_is_the_same_at_each_load(server: FaultServer) -> None:
    server.models = vllm_models
    engine = served(server.url, server="vllm", stream=False)
    spec = engine.registry.resolve("f", "text")
    backend = get_backend("openai")
    first = generate(engine, seed=1)
    generate(engine, seed=2)  # recorded under the identity of the first load
    engine.models.unload()
    assert generate(engine, seed=3).ok  # loads again: vLLM gives new permission ids and times
    assert backend.fingerprint(spec) == first.request.fingerprint
    assert first.info["identity"]["max_model_len"] == 4096 and "permission" not in first.info["identity"]
    assert generate(engine, seed=2).cached and len(server.gets) == 2


def test_two_aliases_of_one_server_stay_loaded_and_a_second_run_does_not_reload(server: FaultServer) -> None:
    engine = served(server.url, alias="a", stream=False)
    engine.registry.register("b", f"openai:{server.url}", settings={"model": "m2", "stream": False})
    for i in range(8):
        generate(engine, model="ab"[i % 2])
    assert len(server.gets) == 2 and len(engine.models.loaded()) == 2
    assert sorted(loaded.info["model"] for loaded in engine.models.loaded()) == ["m1", "m2"]
    sink = ListSink()
    generate(engine, sink=sink, model="a")
    assert "loading" not in [e.type for e in sink.events] and len(server.gets) == 2


def test_a_key_set_after_the_load_is_used(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_KEY", "old-key-1234")
    server.then("ok", "fine").then("status", 401).then("ok", "fine")
    engine = served(server.url, api_key_env="FAULT_KEY", stream=False)
    assert generate(engine).ok
    with pytest.raises(ServerError, match="set the environment variable FAULT_KEY to a valid key"):
        generate(engine)
    monkeypatch.setenv("FAULT_KEY", "new-key-5678")  # the advice, followed
    assert generate(engine).ok
    assert server.seen[-1]["headers"]["authorization"] == "Bearer new-key-5678" and len(server.gets) == 1


def test_a_404_says_what_is_missing(server: FaultServer) -> None:
    server.then("status", 404, {}, {"error": {"message": "This is a chat model and not supported in the "
                                                         "v1/completions endpoint"}})
    with pytest.raises(ServerError, match=f"^the server at {server.url} has no /completions for 'm1' \\(404: This is "
                                          "a chat model and not supported in the v1/completions endpoint\\); leave "
                                          "--raw out"):
        generate(served(server.url, stream=False), raw=True)
    server.models = (404, "application/json", b'{"detail": "Not Found"}')
    with pytest.raises(ServerError, match=f"^no OpenAI API at {server.url} .*does base_url end in /v1\\?$"):
        generate(served(server.url, alias="g"), model="g")


def test_an_html_page_for_models_is_a_one_line_error(server: FaultServer) -> None:
    server.models = (200, "text/html", b"<html><body>Sign in</body></html>")
    with pytest.raises(ServerError, match=f"^the server at {server.url} sent a malformed answer to /models"):
        generate(served(server.url))
    with pytest.raises(ServerError, match="malformed answer to /models"):
        get_backend("openai").list_models(server.url)


def test_a_generation_that_times_out_is_not_sent_again(server: FaultServer) -> None:
    server.then("slow", 3)
    with pytest.raises(ServerError, match=r"did not answer in time .*read_timeout 0\.5 s; not sent again"):
        generate(served(server.url, read_timeout=0.5, max_retries=2, stream=False))
    assert len(server.seen) == 1


def test_a_retry_after_too_long_to_wait_says_how_long(server: FaultServer) -> None:
    server.then("status", 429, {"Retry-After": "300"})
    with pytest.raises(ServerError, match=r"answered 429 and asks to wait 300 s \(Retry-After\); try again later$"):
        generate(served(server.url, stream=False))
    assert len(server.seen) == 1
    server.then("status", 429, {"Retry-After": "0.2"}).then("status", 429, {"Retry-After": "0.2"})
    with pytest.raises(ServerError, match=r"after 1 retries; it asks to wait 0\.2 s \(Retry-After\)"):
        generate(served(server.url, alias="g", stream=False, max_retries=1), model="g")


def test_the_environments_organization_is_not_sent(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-private")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-private")
    generate(served(server.url, stream=False))
    headers = server.seen[-1]["headers"]
    assert "openai-organization" not in headers and "openai-project" not in headers


def test_samples_finished_before_a_server_error_are_kept(server: FaultServer) -> None:
    server.then("ok", "first").then("status", 400, {}, {"error": {"message": "context full"}})
    engine = served(server.url, stream=False)
    result = generate(engine, num=3)
    assert result.status == "error" and result.texts == ["first"]
    assert result.error == f"sample 2 of 3: the server at {server.url} answered 400: context full"
    assert engine.history.get(result.history_id).outputs["texts"] == ["first"]


class CellSink(ListSink):
    retracts = True  # a notebook cell: gets each token at once (a terminal's view gets text once screened)


class Interrupting(CellSink):
    def emit(self, event: Any) -> None:
        super().emit(event)
        if event.type == "token":
            raise KeyboardInterrupt


@pytest.mark.parametrize("sink", [CellSink(cancel_after=1), Interrupting()], ids=["stop", "interrupt"])
def test_stop_and_interrupt_close_the_http_stream(server: FaultServer, sink: ListSink) -> None:
    server.then("slowstream", ["tick"] * 50, 0.05)
    result = generate(served(server.url), sink=sink)
    assert result.status == "interrupted" and result.text == "tick"
    assert server.disconnected.wait(5)  # the server saw the client hang up: its work ends too


def test_image_runs_are_never_cached(server: FaultServer) -> None:
    engine = Engine()
    engine.registry.register("painter", f"openai:{server.url}", kind="image",
                             settings={"model": "m1", "seed_honoured": True})
    request = engine.request("image", "x", o.ImageOptions(seed=1), model="painter", given={"seed"})
    get_backend("openai")._identities[(server.url, "m1")] = "{}"  # as after a load
    assert not engine.cacheable(request)  # the images API takes no seed
