# The two commands in the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first, on its own: a bare `torch` requirement would pull a multi-GB CUDA build.
# GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= image,finetune,tables,safety,server,notebook,dev

# A real serving engine for the remote-backend tests: llama-cpp-python's OpenAI-compatible server,
# compiled once (3-6 min on 2 cores) into a wheel cached outside the repo, so re-runs skip the build.
# The wheel is kept per platform, Python and CMake arguments; the sdist (llama.cpp's
# convert_hf_to_gguf.py and the bundled gguf-py) is extracted next to it.
ENGINE_CACHE ?= $(HOME)/.cache/genmagic/wheels
LLAMA_CPP ?= 0.3.36
LLAMA_CPP_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
export GENMAGIC_ENGINE_CACHE := $(ENGINE_CACHE)
ENGINE_SDIST := $(ENGINE_CACHE)/llama_cpp_python-$(LLAMA_CPP)
ENGINE_CONVERTER := $(ENGINE_SDIST)/vendor/llama.cpp/convert_hf_to_gguf.py
ENGINE_WHEELS := $(ENGINE_CACHE)/$(shell $(PYTHON) -c "import hashlib, sys, sysconfig; \
	print(sysconfig.get_platform(), sys.implementation.cache_tag, hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12], \
	sep='-')" "$(LLAMA_CPP_CMAKE_ARGS)")

.PHONY: setup demo test lint bench clean engine lab

# The lab sidebar (labextension/): `pip install -e .` builds it (hatch-jupyter-builder runs jlpm) and copies
# it into the venv; the link below replaces that copy (as `jupyter labextension develop` would), so a
# rebuild (cd labextension && jlpm build:prod) shows at once.
# Its tests need the node packages (jest, Playwright: no browser download) and a Chromium; apt installs
# one when none is on PATH (CI runs as root).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
LAB := labextension

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	@# read the installed version from its metadata: importing torch before numpy is installed
	@# prints torch's "Failed to initialize NumPy" warning
	$(BIN)/python -c "from importlib.metadata import version; print('torch==' + version('torch').split('+')[0])" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.lab: $(VENV)/.installed $(LAB)/package.json $(LAB)/yarn.lock
	@# Debian's Chromium for the browser tests (CI runs as root); without root it says so and goes on:
	@# the sidebar works without it, and `make test` then fails its browser test with the reason
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "genmagic: could not install chromium (apt-get needs root); the browser tests need it"
	cd $(LAB) && $(abspath $(BIN))/jlpm install --immutable
	rm -rf $(VENV)/share/jupyter/labextensions/genmagic && mkdir -p $(VENV)/share/jupyter/labextensions
	ln -s $(CURDIR)/genmagic/labextension $(VENV)/share/jupyter/labextensions/genmagic
	touch $@

lab: $(VENV)/.lab

setup: $(VENV)/.installed $(VENV)/.lab

$(ENGINE_SDIST).tar.gz: | $(VENV)/.installed
	mkdir -p "$(ENGINE_CACHE)"
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_CPP)" -d "$(ENGINE_CACHE)"

# a file target: a cleaned cache is extracted again; an interrupted tar never leaves a folder that passes
$(ENGINE_CONVERTER): $(ENGINE_SDIST).tar.gz
	rm -rf "$(ENGINE_SDIST).part" && mkdir -p "$(ENGINE_SDIST).part"
	tar xzf "$<" -C "$(ENGINE_SDIST).part"
	rm -rf "$(ENGINE_SDIST)" && mv "$(ENGINE_SDIST).part/llama_cpp_python-$(LLAMA_CPP)" "$(ENGINE_SDIST)"
	rm -rf "$(ENGINE_SDIST).part"
	test -f "$@" && touch "$@"

$(ENGINE_WHEELS)/.built-$(LLAMA_CPP): $(ENGINE_SDIST).tar.gz | $(VENV)/.installed
	mkdir -p "$(ENGINE_WHEELS)"
	ls "$(ENGINE_WHEELS)"/llama_cpp_python-$(LLAMA_CPP)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-deps -w "$(ENGINE_WHEELS)" "$<"
	touch "$@"

$(VENV)/.engine-$(LLAMA_CPP): $(VENV)/.installed $(ENGINE_WHEELS)/.built-$(LLAMA_CPP) $(ENGINE_CONVERTER)
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt --find-links "$(ENGINE_WHEELS)" \
		--only-binary llama-cpp-python "llama-cpp-python[server]==$(LLAMA_CPP)"
	touch $@

engine: $(VENV)/.engine-$(LLAMA_CPP)

demo: setup
	$(BIN)/python examples/run_notebook.py examples/01_generate.ipynb examples/02_imagine.ipynb

lint: setup
	$(BIN)/ruff check genmagic tests bench training examples
	$(BIN)/mypy

# GENMAGIC_REQUIRE_ENGINE / _LAB: a missing engine, node package or Chromium fails those tests instead of skipping them
test: lint engine lab
	GENMAGIC_REQUIRE_ENGINE=1 GENMAGIC_REQUIRE_LAB=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: setup engine
	$(BIN)/python bench/import_cost.py
	$(BIN)/python bench/generate_overhead.py
	$(BIN)/python bench/imagine_overhead.py
	$(BIN)/python bench/remote_overhead.py
	$(BIN)/python bench/model_quality.py
	$(BIN)/python bench/safety_eval.py
	$(BIN)/python bench/safety_overhead.py
	$(BIN)/python bench/decoding.py
	$(BIN)/python bench/grammar_engines.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/widgets_overhead.py
	$(BIN)/python bench/panel_overhead.py
	$(BIN)/python bench/finetune_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
