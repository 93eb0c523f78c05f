"""Random option lines and prompts: %%generate either succeeds or raises a plain UsageError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

FLAGS = ["--max-new-tokens", "--temperature", "--top-p", "--top-k", "--repetition-penalty", "--seed", "-n",
         "--stop", "--system", "-f", "--out", "-m"]
SWITCHES = ["--truncate", "--chat", "--no-cache", "--no-stream", "--no-interpolate"]
VALUES = st.one_of(
    st.integers(-5, 40).map(str),
    st.floats(-1, 3).map(lambda f: f"{f:.2f}"),
    st.sampled_from(["markdown", "json", "text", "code", "html", "yaml", "tiny", "echo:x", "nan", "''", '"a b"',
                     "x1", "{", "}", "--", "\\"]),
    st.text(max_size=6),
)
PART = st.one_of(st.tuples(st.sampled_from(FLAGS), VALUES).map(" ".join), st.sampled_from(SWITCHES))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(PART, max_size=5), prompt=st.text(max_size=40))
def test_random_lines(ip: Any, parts: list[str], prompt: str) -> None:
    line = " ".join(["-m tiny", "--max-new-tokens 4", *parts]).replace("\n", " ")
    genmagic_out_vars = [k for k in ip.user_ns if k.startswith("x1")]
    for k in genmagic_out_vars:
        del ip.user_ns[k]
    try:
        ip.run_cell_magic("generate", line, prompt)
    except UsageError:
        pass
