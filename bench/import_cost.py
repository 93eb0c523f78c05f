"""What `%load_ext genmagic` costs: wall time beside a bare IPython start, and heavy imports.

Runs each variant in fresh interpreters, interleaved, and reports medians.
Usage: python bench/import_cost.py [rounds]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CODE = """
import json, sys, time
t0 = time.perf_counter()
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
t1 = time.perf_counter()
before = set(sys.modules)
if {load}:
    ip.run_line_magic("load_ext", "genmagic")
t2 = time.perf_counter()
new = set(sys.modules) - before
heavy = [m for m in ("torch", "transformers", "diffusers", "peft", "pandas", "numpy", "PIL") if m in new]
print(json.dumps({{"ipython": t1 - t0, "load_ext": t2 - t1, "modules": len(new), "heavy": heavy}}))
"""


def measure(load: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CODE.format(load=load)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    bare, loaded = [], []
    for _ in range(rounds):
        bare.append(measure(False))
        loaded.append(measure(True))
    ipython_ms = statistics.median(r["ipython"] for r in bare) * 1000
    load_ms = statistics.median(r["load_ext"] for r in loaded) * 1000
    print(f"bare IPython start:      {ipython_ms:7.1f} ms (median of {rounds})")
    print(f"%load_ext genmagic adds: {load_ms:7.1f} ms, {loaded[-1]['modules']} new modules")
    print(f"heavy modules it imports:  {loaded[-1]['heavy'] or 'none'}")
    print(f"target: under 50 ms added -> {'OK' if load_ms < 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
