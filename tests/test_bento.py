"""`bentoml build` turns the repo into a Bento holding the service, the shipped model, its gates and the knowledge."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from skinscan import config


def test_bentoml_build_contents(tmp_path, model_dir):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=config.ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tag = out.stdout.strip().splitlines()[-1].replace("__tag__:", "")
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "service.service:SkinScan"
    composed = {"skinscan-classifier"} if config.SERVING_LAYOUT == "composed" else set()
    assert {s["name"] for s in meta["services"]} == {"skinscan"} | composed
    src = bento / "src"
    for rel in ("service/service.py", "skinscan/pipeline.py", "skinscan/knowledge.json",
                f"models/{config.MODEL_NAME}/model.tflite", f"models/{config.MODEL_NAME}/gates.json",
                f"models/{config.MODEL_NAME}/gates.npz", f"models/{config.MODEL_NAME}/quality.json",
                f"models/{config.MODEL_NAME}/labels.json", f"models/{config.MODEL_NAME}/calibration.json",
                f"models/{config.MODEL_NAME}/crossval.json", f"models/{config.MODEL_NAME}/metrics.json",
                "third_party/efficientnet-lite0/LICENSE"):
        assert (src / rel).is_file(), rel
    assert not (src / "tests").exists() and not (src / ".venv").exists()
    assert not (src / "models" / config.MODEL_NAME / "model.keras").exists()  # the API image serves model.tflite
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    for pkg in ("bentoml==", "ai-edge-litert==", "opencv-python-headless==", "fastapi=="):
        assert pkg in reqs, pkg
    names = [line.split("==")[0].lower() for line in reqs.splitlines() if "==" in line and not line.startswith("#")]
    assert not [n for n in names if "tensorflow" in n or "keras" in n], names  # the API image serves model.tflite
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile  # CPU base image
    assert "libgl1" in dockerfile and "libglib2.0-0" in dockerfile
    assert "USER bentoml" in dockerfile or "USER 1034" in dockerfile
