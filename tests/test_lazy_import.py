"""%load_ext genmagic must not import torch, transformers or diffusers."""

from __future__ import annotations

import subprocess
import sys


def test_load_ext_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'genmagic')\n"
        "ip.run_line_magic('genmagic', 'models')\n"
        "ip.run_cell('%generate?')\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'peft', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
