# skinscan: every command runs as .venv/bin/python -m ... from the repo root.
PY      := .venv/bin/python
STAMP   := .venv/.installed-stamp
API_HOST ?= 127.0.0.1
API_PORT ?= 3000
UI_PORT  ?= 8501

.PHONY: venv backbone train gates evaluate serve serve-api serve-ui test browser bento bench clean podman images

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

backbone: venv  ## convert the ImageNet EfficientNet-Lite0 checkpoint to Keras (cached in models/backbone/)
	$(PY) -m training.convert_backbone

train: venv  ## reproduce the shipped model from ../shared/data (then the TTA check and the gates)
	$(PY) -m training.train
	$(PY) -m training.tta
	$(MAKE) gates

gates: venv  ## fit quality, skin and unknown gates next to the model, then write its MODEL_CARD.md
	$(PY) -m training.fit_quality
	$(PY) -m training.gates

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

bench: venv
	$(PY) -m bench.http

clean:
	rm -rf .venv build artifacts tests/artifacts
