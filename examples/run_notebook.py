"""Execute a notebook headless (as `make demo` does) and print what each cell produced."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def text_of(output: dict) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get("data", {})
    if "image/png" in data:
        return "[image/png]"
    return str(data.get("text/plain", ""))


def main(path: str) -> int:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print(f"\n>>> {cell.source}")
        for output in cell.get("outputs", []):
            shown = text_of(output).strip()
            if shown:
                print(shown)
    out = Path(path).with_suffix(".out.ipynb")
    nbformat.write(nb, out)
    print(f"\nexecuted notebook written to {out}")
    return 0


if __name__ == "__main__":
    paths = sys.argv[1:] or ["examples/01_generate.ipynb"]
    sys.exit(max(main(p) for p in paths))
