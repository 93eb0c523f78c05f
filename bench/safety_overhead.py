"""What the safety checks cost (issue: targets <= 20 ms per %%generate call at the standard level).

1. The latency a text run gains at ``standard`` with the semantic layer loaded: the same
   request through ``Engine.run`` with the default checks and with none, interleaved, the
   embedded tiny-text model, the cache off. Reported as the median of paired differences (ms)
   and as a ratio.
2. The cost of screening a streamed output, per token: a realistic answer fed token by token
   through the ``ScreeningSink`` (rule layer at each sentence end) vs straight into a sink.
3. PII scanning throughput (MB/s) on several MB of prose with PII sprinkled in (bench/pii_eval.py).

    python bench/safety_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = ("Write a short, friendly note to my colleague asking whether the quarterly report is ready, "
          "and suggest we meet on Thursday to go through the numbers together.")


def run_latency(rounds: int, tokens: int) -> dict[str, float]:
    import torch

    from genmagic.engine import Engine
    from genmagic.options import TextOptions
    from genmagic.safety.policy import default_checks, shared_moderator

    torch.set_num_threads(1)
    engine = Engine(home=tempfile.mkdtemp(prefix="genmagic-bench-"))
    checks = default_checks()
    shared_moderator().screen("warm up the semantic layer")  # loaded, as the target says
    options = TextOptions(seed=1, max_new_tokens=tokens)

    def once(with_checks: bool, i: int) -> float:
        # A new prompt and seed each round (the same for both sides): the classifier's memo must not
        # answer from an earlier round, as it would for a re-run.
        engine.checks = checks if with_checks else []
        request = engine.request("text", f"{PROMPT} (Draft {i}.)", options.replace(seed=i), model="tiny-text")
        start = time.perf_counter()
        engine.run(request, cache=False, safety="standard")
        return time.perf_counter() - start

    once(True, 10_000), once(False, 10_000)  # load the model, warm caches
    plain: list[float] = []
    checked: list[float] = []
    for i in range(rounds):
        order = (True, False) if i % 2 else (False, True)
        for flag in order:
            (checked if flag else plain).append(once(flag, i))
    diffs = [c - p for c, p in zip(checked, plain, strict=True)]
    return {
        "plain_ms": statistics.median(plain) * 1e3,
        "checked_ms": statistics.median(checked) * 1e3,
        "added_ms": statistics.median(diffs) * 1e3,
        "ratio": statistics.median(checked) / statistics.median(plain),
        "semantic": float(bool(shared_moderator().semantic_available)),
    }


ANSWER = (
    "Sure! Here is a short plan for the week. On Monday, review the open tickets and close the stale ones. "
    "On Tuesday, pair with Sam on the data pipeline; the nightly job still times out when the input is large. "
    "Midweek, write the summary for the team and share the draft before Thursday's meeting. "
    "Finally, on Friday, take stock of what worked and what did not, and plan the next sprint. "
) * 4


def stream_cost(repeats: int = 20) -> dict[str, float]:
    from genmagic.request import Event, NullSink
    from genmagic.safety.policy import ModerationCheck, shared_moderator
    from genmagic.safety.screen import ScreeningSink

    tokens = [w + " " for w in ANSWER.split(" ")]
    check = ModerationCheck(shared_moderator())

    def feed(wrapped: bool) -> float:
        sink = NullSink()
        target = ScreeningSink(sink, [check], None, "standard") if wrapped else sink  # type: ignore[arg-type]
        start = time.perf_counter()
        for token in tokens:
            target.emit(Event("token", token))
        return time.perf_counter() - start

    feed(True), feed(False)
    wrapped = statistics.median(feed(True) for _ in range(repeats))
    bare = statistics.median(feed(False) for _ in range(repeats))
    return {"tokens": float(len(tokens)), "us_per_token": (wrapped - bare) / len(tokens) * 1e6}


def pii_throughput(megabytes: float = 4.0) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pii_eval import throughput_mb_s

    return float(throughput_mb_s(megabytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 120], help="new tokens per call")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for tokens in args.tokens:
        lat = run_latency(args.rounds, tokens)
        print(f"%%generate, {tokens} new tokens, at standard (semantic layer "
              f"{'loaded' if lat['semantic'] else 'NOT installed'}): {lat['checked_ms']:.1f} ms vs "
              f"{lat['plain_ms']:.1f} ms without checks -> +{lat['added_ms']:.1f} ms per call "
              f"(ratio {lat['ratio']:.3f}; target <= 20 ms)")
    cost = stream_cost()
    print(f"streamed output screening: {cost['us_per_token']:.1f} us per token ({cost['tokens']:.0f} tokens)")
    print(f"PII scanning: {pii_throughput():.2f} MB/s (prose with PII every few KB; bench/pii_eval.py)")


if __name__ == "__main__":
    main()
