"""The jupyter_server extension behind the lab sidebar (genmagic.server), in a real server
(pytest-jupyter's ``jp_serverapp``) over a real history store (tests/lab_history.py).

pytest-jupyter's fixtures are imported here rather than registered as a plugin: as a plugin its
autouse fixtures (a fresh event loop closed after each test, a ServerApp clean-up) would run
around every test of the suite. Coroutine tests run in its loop through :func:`in_loop`.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from lab_history import HELD_TEXT, fill
from pytest_jupyter.jupyter_core import *  # noqa: F403  (fixtures for this module only)
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPClientError


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A coroutine test run to completion in pytest-jupyter's event loop (``jp_asyncio_loop``)."""

    @functools.wraps(test)
    def run(*args: Any, jp_asyncio_loop: Any, **kwargs: Any) -> None:
        jp_asyncio_loop.run_until_complete(test(*args, **kwargs))

    signature = inspect.signature(test)
    loop = inspect.Parameter("jp_asyncio_loop", inspect.Parameter.KEYWORD_ONLY)
    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), loop])  # type: ignore[attr-defined]
    return run

API = "genmagic/api"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"genmagic.server": True}}}


@pytest.fixture
def runs(genmagic_home: Path, jp_root_dir: Path) -> dict[str, Any]:
    return fill(genmagic_home, jp_root_dir)


async def get_json(jp_fetch: Any, *path: str, **params: Any) -> Any:
    response = await jp_fetch(API, *path, params=params)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def status_of(jp_fetch: Any, *path: str, **kwargs: Any) -> int:
    try:
        response = await jp_fetch(API, *path, **kwargs)
    except HTTPClientError as err:
        return err.code
    return int(response.code)


@in_loop
async def test_models_lists_the_registry_without_settings(jp_fetch: Any, jp_serverapp: Any) -> None:
    from genmagic.registry import Registry

    Registry().register("served", "http://user:sk-secret@127.0.0.1:9/v1?key=sk-other", kind="text",
                        backend="openai", persist=True, settings={"model": "m"})
    data = await get_json(jp_fetch, "models")
    by_alias = {m["alias"]: m for m in data["models"]}
    assert {"tiny-text", "tiny-image", "served"} <= set(by_alias)
    assert by_alias["tiny-text"]["kind"] == "text" and by_alias["tiny-text"]["backend"] == "transformers"
    assert by_alias["tiny-text"]["default"] is True and data["defaults"] == {"text": "tiny-text", "image": "tiny-image"}
    assert by_alias["tiny-image"]["loaded"] is False
    assert "sk-secret" not in json.dumps(data) and "sk-other" not in json.dumps(data)
    assert set(by_alias["served"]) == {"alias", "kind", "backend", "source", "origin", "description", "adapters",
                                       "default", "loaded"}


@in_loop
async def test_loaded_means_a_live_process_ran_the_model(jp_fetch: Any, runs: dict[str, Any],
                                                         genmagic_home: Path) -> None:
    """History records the pid of each run: this test process 'ran' tiny-text, a dead pid tiny-image."""
    import sqlite3

    with sqlite3.connect(genmagic_home / "history.sqlite") as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE kind = 'image'", (2**22 + 12345,))  # above pid_max: never alive
    models = {m["alias"]: m for m in (await get_json(jp_fetch, "models"))["models"]}
    assert models["tiny-text"]["loaded"] is True
    assert models["tiny-image"]["loaded"] is False


@in_loop
async def test_history_pages_newest_first(jp_fetch: Any, runs: dict[str, Any]) -> None:
    first = await get_json(jp_fetch, "history", size=3, page=1)
    second = await get_json(jp_fetch, "history", size=3, page=2)
    last = await get_json(jp_fetch, "history", size=3, page=3)
    assert first["total"] == second["total"] == 8
    ids = [i["id"] for i in first["items"] + second["items"] + last["items"]]
    assert ids == sorted(ids, reverse=True) == list(range(8, 0, -1))
    assert (await get_json(jp_fetch, "history", size=3, page=4))["items"] == []


@in_loop
async def test_history_search_and_filters(jp_fetch: Any, runs: dict[str, Any], jp_root_dir: Path) -> None:
    found = await get_json(jp_fetch, "history", q="lighthouse 3")
    assert [i["id"] for i in found["items"]] == [runs["text"][3]] and found["total"] == 1
    assert (await get_json(jp_fetch, "history", q="keeper lit"))["total"] == 5  # matches outputs too
    assert (await get_json(jp_fetch, "history", q="100%"))["total"] == 0  # LIKE wildcards are literal
    images = await get_json(jp_fetch, "history", kind="image")
    assert [i["id"] for i in images["items"]] == runs["image"][::-1]
    assert all(len(i["images"]) == 1 and i["images"][0].endswith(".png") for i in images["items"])
    assert (await get_json(jp_fetch, "history", status="review"))["total"] == 1
    assert (await get_json(jp_fetch, "history", model="tiny-image"))["total"] == 2
    # the notebook as the front end names it (relative to the root) matches the absolute path
    # jupyter_server gave the kernel (JPY_SESSION_NAME)
    story = await get_json(jp_fetch, "history", notebook="story.ipynb", kind="text")
    assert [i["id"] for i in story["items"]] == [runs["review"], runs["text"][4], runs["text"][2], runs["text"][0]]
    assert all(i["notebook"] == "story.ipynb" for i in story["items"])
    assert (await get_json(jp_fetch, "history", notebook="other.ipynb"))["total"] == 2
    assert (await get_json(jp_fetch, "history", notebook="missing.ipynb"))["total"] == 0


@in_loop
async def test_history_item_fields(jp_fetch: Any, runs: dict[str, Any]) -> None:
    item = await get_json(jp_fetch, "history", str(runs["text"][1]))
    assert item["prompt"] == "Tell a story about lighthouse 1" and item["model"] == "tiny-text"
    assert item["seed"] == 2 and item["options"]["temperature"] == 0.5
    assert item["texts"] == ["Story 1: the keeper lit the lamp."] and item["status"] == "ok"


@in_loop
async def test_withheld_output_stays_out_of_history_until_approved(jp_fetch: Any, runs: dict[str, Any]) -> None:
    item = await get_json(jp_fetch, "history", str(runs["review"]))
    assert item["texts"] == [None] and "violent crimes" in item["withheld"]["0"]
    assert HELD_TEXT not in json.dumps(await get_json(jp_fetch, "history"))
    assert item["verdicts"][0]["action"] == "review"


@in_loop
async def test_altered_rows_do_not_break_the_history(jp_fetch: Any, runs: dict[str, Any], genmagic_home: Path) -> None:
    """Anything may have written the database: an odd row shows what it can, the rest still lists."""
    import sqlite3

    with sqlite3.connect(genmagic_home / "history.sqlite") as conn:
        conn.execute("UPDATE runs SET outputs = '\"a string\"', verdicts = '3', timings = '[]' WHERE id = ?",
                     (runs["text"][0],))
        conn.execute("UPDATE runs SET verdicts = '{\"a\": 1}', request = '{}' WHERE id = ?", (runs["text"][1],))
        conn.execute("UPDATE runs SET outputs = '{\"images\": [\"../../etc/passwd.png\", 5], \"seeds\": 3}' WHERE id = ?",
                     (runs["image"][0],))
    items = {i["id"]: i for i in (await get_json(jp_fetch, "history"))["items"]}
    assert len(items) == 8
    assert items[runs["text"][0]]["texts"] == [] and items[runs["text"][0]]["verdicts"] == []
    assert items[runs["text"][1]]["verdicts"] == [] and items[runs["text"][1]]["options"] == {}
    assert items[runs["image"][0]]["images"] == [None, None]  # never a name that is not a blob's
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch(API, "history", str(runs["text"][1]), "cell")
    assert err.value.code == 422 and "cannot be written as a cell" in json.loads(err.value.response.body)["message"]


@in_loop
async def test_bad_parameters_are_one_line_400s(jp_fetch: Any, runs: dict[str, Any]) -> None:
    for params in ({"size": "0"}, {"size": "201"}, {"page": "x"}, {"page": "0"}):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch(API, "history", params=params)
        assert err.value.code == 400
        message = json.loads(err.value.response.body)["message"]
        assert next(iter(params)) in message and "give" in message
    assert await status_of(jp_fetch, "history", "999") == 404


@in_loop
async def test_cell_reproduces_the_run(jp_fetch: Any, runs: dict[str, Any]) -> None:
    from genmagic.magic_line import cell_for_request

    cell = (await get_json(jp_fetch, "history", str(runs["text"][2]), "cell"))["cell"]
    assert cell.startswith("%%generate -m tiny-text") and "--seed 3" in cell
    assert cell.endswith("\nTell a story about lighthouse 2")
    from genmagic.history import History

    record = History(os.environ["GENMAGIC_HOME"]).get(runs["text"][2])
    assert record is not None and cell == cell_for_request(record.request)
    image_cell = (await get_json(jp_fetch, "history", str(runs["image"][0]), "cell"))["cell"]
    assert image_cell.startswith("%%imagine -m tiny-image") and "--seed 7" in image_cell


@in_loop
async def test_new_cell_uses_the_settings(jp_fetch: Any) -> None:
    cell = (await get_json(jp_fetch, "cell", kind="image", model="my model", safety="strict"))["cell"]
    assert cell.splitlines()[0] == "%%imagine -m 'my model' --safety strict"
    assert (await get_json(jp_fetch, "cell", kind="text"))["cell"].splitlines()[0] == "%%generate"
    assert await status_of(jp_fetch, "cell", params={"kind": "audio"}) == 400
    assert await status_of(jp_fetch, "cell", params={"kind": "text", "safety": "lax"}) == 400


@in_loop
async def test_images_and_thumbnails(jp_fetch: Any, runs: dict[str, Any], genmagic_home: Path) -> None:
    import io

    from PIL import Image

    name = (await get_json(jp_fetch, "history", str(runs["image"][0])))["images"][0]
    full = await jp_fetch(API, "images", name)
    assert full.headers["Content-Type"] == "image/png" and full.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(full.body)).size == (64, 64)
    thumb = await jp_fetch(API, "thumbs", "64", name)
    assert Image.open(io.BytesIO(thumb.body)).size == (64, 64)
    small = await jp_fetch(API, "thumbs", "128", name)  # never enlarged
    assert Image.open(io.BytesIO(small.body)).size == (64, 64)
    assert (genmagic_home / "thumbs" / f"{name[:-4]}-64.png").is_file()  # cached
    assert await status_of(jp_fetch, "thumbs", "100", name) == 400  # sizes are a fixed set


TRAVERSALS = [
    "..%2F..%2Fhistory.sqlite",
    "%2Fetc%2Fpasswd",
    "..%252Fhistory.png",
    "%2E%2E%2Fhistory.sqlite",
    "0" * 64 + ".sqlite",
    "0" * 64 + ".png%2F..%2F..%2Fhistory.sqlite",
    "0" * 63 + ".png",
    "..%2F..%2F" + "0" * 64 + ".png",  # a valid-looking name behind a traversal
    "%2Ftmp%2F" + "0" * 64 + ".png",
]


@pytest.mark.parametrize("name", TRAVERSALS)
@in_loop
async def test_image_serving_cannot_leave_the_store(jp_fetch: Any, runs: dict[str, Any], name: str) -> None:
    for path in (("images", name), ("thumbs", "64", name)):
        status = await status_of(jp_fetch, *path[:-1], path[-1])
        assert status in (404, 400), (path, status)


@in_loop
async def test_raw_traversal_paths_are_not_routed(jp_fetch: Any, jp_serverapp: Any, http_server_client: Any,
                                                  jp_auth_header: dict[str, str], jp_base_url: str,
                                                  runs: dict[str, Any]) -> None:
    """Paths the client would normalise (``..``, ``//``) sent as raw bytes."""
    for raw in ("images/../history.sqlite", "images/../../history", "images//etc/passwd", "thumbs/64/../../x.png"):
        response = await http_server_client.fetch(f"{jp_base_url}{API}/{raw}", headers=jp_auth_header,
                                                  raise_error=False)
        assert response.code in (400, 403, 404), (raw, response.code)
        assert b"SQLite" not in response.body


@in_loop
async def test_a_symlinked_blob_is_not_served(jp_fetch: Any, runs: dict[str, Any], genmagic_home: Path,
                                              tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    name = "ab" + "0" * 62 + ".png"
    link = genmagic_home / "blobs" / "ab" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    assert await status_of(jp_fetch, "images", name) == 404
    assert await status_of(jp_fetch, "thumbs", "64", name) == 404
    # a thumbnail-cache entry that is a symlink is not read either
    real = (await get_json(jp_fetch, "history", str(runs["image"][1])))["images"][0]
    (genmagic_home / "thumbs").mkdir(exist_ok=True)
    (genmagic_home / "thumbs" / f"{real[:-4]}-256.png").symlink_to(outside)
    assert (await jp_fetch(API, "thumbs", "256", real)).body != b"secret"


@pytest.mark.parametrize("path", [("models",), ("history",), ("history", "1"), ("history", "1", "cell"),
                                  ("review",), ("cell",), ("thumbs", "64", "0" * 64 + ".png")])
@in_loop
async def test_every_endpoint_needs_authentication(http_server_client: Any, jp_serverapp: Any, jp_base_url: str,
                                                   runs: dict[str, Any], path: tuple[str, ...]) -> None:
    url = f"{jp_base_url}{API}/{'/'.join(path)}"
    response = await http_server_client.fetch(url, raise_error=False)
    assert response.code == 403
    wrong = await http_server_client.fetch(url, headers={"Authorization": "token wrong"}, raise_error=False)
    assert wrong.code == 403
    post = await http_server_client.fetch(f"{jp_base_url}{API}/review/{runs['review']}", method="POST",
                                          body=json.dumps({"decision": "approve"}), raise_error=False)
    assert post.code == 403


async def _login(http_server_client: Any, jp_serverapp: Any, jp_base_url: str) -> dict[str, str]:
    """Cookies of a browser session: the XSRF cookie from the login page, then the login cookie."""
    page = await http_server_client.fetch(f"{jp_base_url}login", raise_error=False)
    cookies = _cookies(page)
    body = urllib.parse.urlencode({"password": jp_serverapp.identity_provider.token, "_xsrf": cookies["_xsrf"]})
    done = await http_server_client.fetch(f"{jp_base_url}login", method="POST", body=body, follow_redirects=False,
                                          headers={"Cookie": _cookie_header(cookies)}, raise_error=False)
    assert done.code == 302
    return cookies | _cookies(done)


def _cookies(response: Any) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {k: v.value for k, v in jar.items()}


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


@in_loop
async def test_a_cookie_session_needs_the_xsrf_token_to_decide(http_server_client: Any, jp_serverapp: Any,
                                                               jp_base_url: str, runs: dict[str, Any]) -> None:
    cookies = await _login(http_server_client, jp_serverapp, jp_base_url)
    url = f"{jp_base_url}{API}/review/{runs['review']}"
    headers = {"Cookie": _cookie_header(cookies)}
    listed = await http_server_client.fetch(f"{jp_base_url}{API}/review", headers=headers, raise_error=False)
    assert listed.code == 200  # the cookie is a session: reads work
    body = json.dumps({"decision": "reject"})
    forged = await http_server_client.fetch(url, method="POST", body=body, headers=headers, raise_error=False)
    assert forged.code == 403
    from genmagic import safety

    assert [r.id for r in safety.pending()] == [runs["review"]]  # nothing was decided
    ok = await http_server_client.fetch(url, method="POST", body=body, raise_error=False,
                                        headers=headers | {"X-XSRFToken": cookies["_xsrf"]})
    assert ok.code == 200 and safety.pending() == []


@in_loop
async def test_review_approve_round_trip(jp_fetch: Any, runs: dict[str, Any]) -> None:
    from genmagic import safety

    queue = await get_json(jp_fetch, "review")
    assert [i["id"] for i in queue["items"]] == [runs["review"]]
    assert queue["items"][0]["texts"] == [HELD_TEXT]  # the reviewer sees what they decide on
    assert [r.id for r in safety.pending()] == [runs["review"]]
    response = await jp_fetch(API, "review", str(runs["review"]), method="POST",
                              body=json.dumps({"decision": "approve", "note": "fine in context"}))
    item = json.loads(response.body)
    assert item["decision"]["decision"] == "approved" and item["texts"] == [HELD_TEXT]
    assert safety.pending() == []  # the kernel side (genmagic.safety) sees the decision
    from genmagic.engine import default_engine

    decision = default_engine().history.final_decision(runs["review"])
    assert decision is not None and decision["note"] == "fine in context"
    assert (await get_json(jp_fetch, "review"))["items"] == []
    assert HELD_TEXT in json.dumps(await get_json(jp_fetch, "history"))  # released in history too
    # a decision is final
    assert await status_of(jp_fetch, "review", str(runs["review"]), method="POST",
                           body=json.dumps({"decision": "reject"})) == 409


@in_loop
async def test_review_reject_reaches_a_held_result(jp_fetch: Any, runs: dict[str, Any]) -> None:
    from genmagic import safety
    from genmagic.engine import default_engine

    history = default_engine().history
    record = history.get(runs["review"])
    assert record is not None
    from genmagic.request import Request
    from genmagic.results import TextResult

    held = TextResult(request=Request.from_dict(record.request), texts=["***"], status="review")
    held.history_id = runs["review"]
    await jp_fetch(API, "review", str(runs["review"]), method="POST", body=json.dumps({"decision": "reject"}))
    assert safety.refresh(held) == "rejected"
    item = await get_json(jp_fetch, "history", str(runs["review"]))
    assert item["decision"]["decision"] == "rejected" and item["texts"] == [None]


@pytest.mark.parametrize("body", ['{"decision": "maybe"}', "not json", '{"decision": "approve", "note": 3}',
                                  json.dumps({"decision": "approve", "note": "x" * 2001}), "[1]"])
@in_loop
async def test_review_bad_bodies(jp_fetch: Any, runs: dict[str, Any], body: str) -> None:
    assert await status_of(jp_fetch, "review", str(runs["review"]), method="POST", body=body) == 400


@in_loop
async def test_review_of_a_run_not_held(jp_fetch: Any, runs: dict[str, Any]) -> None:
    body = json.dumps({"decision": "approve"})
    assert await status_of(jp_fetch, "review", str(runs["text"][0]), method="POST", body=body) == 409
    assert await status_of(jp_fetch, "review", "4242", method="POST", body=body) == 409


@in_loop
async def test_an_empty_home_is_not_created(jp_fetch: Any, genmagic_home: Path) -> None:
    assert (await get_json(jp_fetch, "history"))["items"] == []
    assert (await get_json(jp_fetch, "review"))["items"] == []
    assert not (genmagic_home / "history.sqlite").exists()


@in_loop
async def test_a_slow_query_does_not_block_the_server(jp_fetch: Any, runs: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A history query held inside SQLite's call: the server still answers other requests."""
    import asyncio
    import threading

    from genmagic.history import History

    entered, release = threading.Event(), threading.Event()
    original = History.page

    def slow_page(self: History, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)  # on the event loop this would freeze the server (and this test) for a minute
        return original(self, *args, **kwargs)

    monkeypatch.setattr(History, "page", slow_page)
    pending = asyncio.ensure_future(jp_fetch(API, "history"))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 60)
    try:
        status = await jp_fetch("api", "status")
        models = await get_json(jp_fetch, "models")
        assert status.code == 200 and models["models"] and not pending.done()
    finally:
        release.set()
    assert json.loads((await pending).body)["total"] == 8


@in_loop
async def test_ids_too_large_for_sqlite_are_404_not_500(jp_fetch: Any, runs: dict[str, Any]) -> None:
    huge = "9" * 26
    for path in (("history", huge), ("history", huge, "cell"), ("thumbs", huge, "0" * 64 + ".png")):
        assert await status_of(jp_fetch, *path) == 404, path
