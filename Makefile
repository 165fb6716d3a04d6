# geneface — common commands. `make help` lists them.
SHELL := /bin/bash
PY ?= .venv/bin/python
PYTHON_BOOT ?= python3
stage ?=
speaker ?=
args ?=
data_args ?=
dir ?=
video ?=
wav ?=

.PHONY: help setup test test-fast demo data train process infer evaluate evaluate-lipsync check visualize clean speaker app

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## create .venv and install geneface with its pinned dependencies (CPU torch unless one is present)
	$(PYTHON_BOOT) -m venv .venv
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install -e ".[app]"
	$(PY) -m pip check
	touch .venv/.installed

# `make demo` on a fresh clone sets up first (once; again when pyproject.toml changes)
.venv/.installed: pyproject.toml
	$(MAKE) setup

test: ## the default test suite (CPU; includes slow and realdata tests, skips gpu)
	$(PY) -m pytest -q $(args)

test-fast: ## the quick tests only (no slow ones)
	$(PY) -m pytest -q -m "not slow" $(args)

data: .venv/.installed ## write the synthetic speaker `demo`, the synthetic corpus and a driving wav under outputs/data/
	$(PY) -m geneface.synthetic $(data_args)

demo: data ## set-up if needed, then the whole pipeline on synthetic data, CPU-sized: every stage → an mp4
	$(PY) -m geneface.train experiment=syncnet_cpu $(args)
	$(PY) -m geneface.train experiment=audio2motion_cpu $(args)
	$(PY) -m geneface.train experiment=postnet_cpu $(args)
	$(PY) -m geneface.train experiment=radnerf_cpu $(args)
	$(PY) -m geneface.train experiment=radnerf_torso_cpu $(args)
	$(PY) -m geneface.infer speaker=demo wav=synthetic_speech.wav

train: ## train a stage: make train stage=syncnet speaker=lrs3 args="stage.max_steps=100"
	@test -n "$(stage)" || { echo "usage: make train stage=<stage> [speaker=<speaker>] [args=...]"; exit 2; }
	$(PY) -m geneface.train stage=$(stage) $(if $(speaker),speaker=$(speaker)) $(args)

process: ## process a speaker video: make process speaker=May video=path/to/May.mp4
	@test -n "$(speaker)" -a -n "$(video)" || { echo "usage: make process speaker=<name> video=<file>"; exit 2; }
	$(PY) -m geneface.process speaker=$(speaker) video=$(video) $(args)

speaker: .venv/.installed ## one speaker, video → report.html + mp4: make speaker speaker=obama video=obama.mp4 args="preset=cpu"
	@test -n "$(speaker)" || { echo "usage: make speaker speaker=<name> video=<file> [args=\"preset=cpu|gpu|full corpus=<corpus> ...\"]"; exit 2; }
	$(PY) -m geneface.pipeline speaker=$(speaker) $(if $(video),video=$(video)) $(args)

infer: ## audio → talking-head mp4 with a trained speaker: make infer speaker=May wav=zozo.wav
	@test -n "$(speaker)" -a -n "$(wav)" || { echo "usage: make infer speaker=<speaker> wav=<file or name in outputs/data/raw/val_wavs>"; exit 2; }
	$(PY) -m geneface.infer speaker=$(speaker) wav=$(wav) $(args)

evaluate: ## self-reconstruction metrics on the val split: make evaluate speaker=May [args="renderer=radnerf"]
	@test -n "$(speaker)" || { echo "usage: make evaluate speaker=<speaker> [args=...]"; exit 2; }
	$(PY) -m geneface.evaluate speaker=$(speaker) $(args)

evaluate-lipsync: ## lip sync from audio on held-out clips: make evaluate-lipsync speaker=cnn2 (or a corpus) [args="tag=x"]
	@test -n "$(speaker)" || { echo "usage: make evaluate-lipsync speaker=<speaker or corpus> [args=\"ckpt=... tag=...\"]"; exit 2; }
	$(PY) -m geneface.evaluate_lipsync speaker=$(speaker) $(args)

check: ## validate a dataset directory: make check dir=outputs/data/demo
	@test -n "$(dir)" || { echo "usage: make check dir=<dataset dir>"; exit 2; }
	$(PY) -m geneface.data.check $(dir)

visualize: ## landmarks → mp4 to check by eye: make visualize npy=pred.npy audio=speech.wav [mean_shape=<dataset dir>] [out=x.mp4]
	@test -n "$(npy)" || { echo "usage: make visualize npy=<idexp_lm3d .npy> [audio=<file>] [mean_shape=<dataset dir or npy>] [out=<mp4>]"; exit 2; }
	$(PY) -m geneface.viz npy=$(npy) $(if $(audio),audio=$(audio)) $(if $(mean_shape),mean_shape=$(mean_shape)) $(if $(out),out=$(out)) $(args)

app: .venv/.installed ## the web page on http://127.0.0.1:7860: make app [args="port=8000"]
	$(PY) -m geneface.app $(args)

clean: ## remove run outputs (keeps outputs/data)
	find outputs -mindepth 1 -maxdepth 1 ! -name data -exec rm -rf {} +
