"""examples/07_tables.ipynb: fields extracted from a DataFrame of tickets into new columns (--over --schema)."""

from __future__ import annotations

from test_notebook import execute


def test_tables_notebook_extracts_fields_into_columns() -> None:
    nb = execute("07_tables.ipynb")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    check = next(c for c in nb.cells if c.source.startswith("assert list(extracted.index)"))
    assert "6 rows; all rows have an output" in check.outputs[0]["text"]
    table = next(c for c in nb.cells if c.source.startswith("extracted = batch.value"))
    html = table.outputs[0]["data"]["text/html"]
    assert "T-106" in html and "wants_refund" in html and ("high" in html or "low" in html or "medium" in html)
