# The two commands in the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first, on its own: a bare `torch` requirement would pull a multi-GB CUDA build.
# GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= image,finetune,safety,server,notebook,dev

.PHONY: setup demo test lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	@# read the installed version from its metadata: importing torch before numpy is installed
	@# prints torch's "Failed to initialize NumPy" warning
	$(BIN)/python -c "from importlib.metadata import version; print('torch==' + version('torch').split('+')[0])" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python examples/run_notebook.py examples/01_generate.ipynb examples/02_imagine.ipynb

lint: setup
	$(BIN)/ruff check genmagic tests bench training examples
	$(BIN)/mypy

test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/import_cost.py
	$(BIN)/python bench/generate_overhead.py
	$(BIN)/python bench/imagine_overhead.py
	$(BIN)/python bench/model_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
