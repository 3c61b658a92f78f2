"""The API and UI images, built with podman (deploy/images.py) and run the way compose.yaml and k8s/ run them.

Numeric non-root uid, read-only root fs with a tmpfs /tmp, all capabilities dropped, no-new-privileges, the UI
finding the API as ``http://api:3000`` on a network of their own, random loopback ports on the host. Real photo,
bad upload, the UI in headless Chromium, then everything stopped and removed. Figures go to
tests/artifacts/containers.json.

Runs wherever podman is installed (`make test` installs it on Debian/Ubuntu, with Chromium); skips only where
podman is absent. A cold first run builds the base images and wheelhouses (see README for how long).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml

from deploy import images, stack as stacks
from skinscan import config
from conftest import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
RESULT_KEYS = {"verdict", "disease", "candidates", "differential", "quality", "skin", "unknown", "info", "model",
               "timings_ms", "disclaimer"}
FIGURES: dict = {}

pytestmark = pytest.mark.slow


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


@pytest.fixture(scope="module")
def built():
    if not shutil.which("podman"):
        pytest.skip("podman not installed (`make podman`: apt-get install podman runc debootstrap)")
    FIGURES["build_s"] = images.build_all()
    FIGURES["image_mb"] = {ref: round(images.image_size_mb(ref)) for ref in (config.API_IMAGE, config.UI_IMAGE)}
    return FIGURES["image_mb"]


@pytest.fixture(scope="module")
def stack(built):
    s = stacks.Stack()
    try:
        s.create_network()
        FIGURES["api_ready_s"] = round(s.start_api(), 1)
        FIGURES["api_memory_mib"] = {"idle_rss": round(stacks.tree_rss_mb(s.api)),
                                     "idle_cgroup": round(stacks.cgroup_memory_mb(s.api))}
        FIGURES["ui_ready_s"] = round(s.start_ui(), 1)
        yield s
    finally:
        s.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "containers.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="module")
def photo(data_root) -> Path:
    folder = data_root / "skin8" / "train" / "shingles"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in config.IMAGE_EXTENSIONS)[0]


def test_api_image_holds_exactly_the_bento_requirements(built):
    """Every pin of the requirements file bentofile.yaml names is installed at that version, and TensorFlow only
    if that file asks for it."""
    wanted = pins(images.api_requirements())
    script = ("import importlib.metadata as m, json; "
              "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))")
    out = images.podman("run", "--rm", "--network", "none", "--entrypoint", "/app/.venv/bin/python",
                        config.API_IMAGE, "-c", script)
    installed = json.loads(out.stdout)
    assert {n: v for n, v in wanted.items() if installed.get(n) != v} == {}
    assert any(n.startswith("tensorflow") for n in installed) == any(n.startswith("tensorflow") for n in wanted)


def test_images_are_built_from_the_local_base(built):
    for ref, base in ((config.API_IMAGE, "skinscan-api-base"), (config.UI_IMAGE, "skinscan-base")):
        history = images.podman("history", "--format", "{{.ID}}", ref).stdout.split()
        base_ids = images.podman("images", "--filter", f"reference=localhost/{base}", "--format", "{{.ID}}").stdout
        assert set(base_ids.split()) & set(history), f"{ref} is not built on localhost/{base}"


def test_containers_run_as_compose_and_k8s_say(stack):
    k8s = yaml.safe_load((config.ROOT / "k8s" / "base" / "api-deployment.yaml").read_text())
    k8s_uid = k8s["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    for container, service in ((stack.api, "api"), (stack.ui, "ui")):
        uid = stack.exec(container, "id", "-u", check=True).stdout.strip()
        assert uid == str(stacks.compose_service(service)["user"]).split(":")[0] and uid != "0"
        status = stack.exec(container, "cat", "/proc/1/status", check=True).stdout
        assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
        assert stack.exec(container, "touch", "/tmp/probe").returncode == 0
        assert stack.exec(container, "touch", "/probe").returncode != 0  # read-only root fs
    assert str(k8s_uid) == stack.exec(stack.api, "id", "-u").stdout.strip()
    # the healthchecks compose (API: curl /readyz) and the UI image (HEALTHCHECK /_stcore/health) declare
    for container in (stack.api, stack.ui):
        assert images.podman("healthcheck", "run", container, check=False).returncode == 0, container


def test_api_container_answers_a_real_photo(stack, photo, pipeline):
    r = requests.post(f"{stack.api_url}/predict", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                      timeout=120)
    assert r.status_code == 200, r.text[:500]
    result = r.json()
    assert RESULT_KEYS <= set(result)
    here = pipeline.run(photo.read_bytes())  # the same model in-process: the container changes nothing
    assert result["verdict"] == here["verdict"]
    assert (result["disease"] or {}).get("id") == (here["disease"] or {}).get("id")
    for a, b in zip(result["differential"], here["differential"]):
        assert a["id"] == b["id"] and abs(a["probability"] - b["probability"]) < 1e-3
    FIGURES["api_memory_mib"]["after_predict_rss"] = round(stacks.tree_rss_mb(stack.api))


def test_api_container_rejects_a_bad_upload(stack):
    r = requests.post(f"{stack.api_url}/predict", files={"image": ("notes.jpg", b"not a photo at all", "image/jpeg")},
                      timeout=60)
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["code"] == "not_an_image" and r.json()["error"]["message"]


def test_ui_container_reaches_the_api(stack, photo):
    """Headless Chromium on the UI container: the tabs only render once the UI reached the API (through the
    ``api`` network alias, SKINSCAN_API_URL from compose.yaml); a photo uploaded there comes back classified."""
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: `make browser` installs it"
    from playwright.sync_api import sync_playwright

    result = requests.post(f"{stack.api_url}/predict", files={"image": (photo.name, photo.read_bytes())},
                           timeout=120).json()
    shown = f"Most likely: {result['disease']['name']}" if result["disease"] else result["message"][:60]
    ms = 90_000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(stack.ui_url, wait_until="domcontentloaded", timeout=ms)
            page.get_by_role("tab", name="Check a photo").wait_for(timeout=ms)
            assert page.get_by_text("not available right now").count() == 0
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo), timeout=ms)
            panel = page.get_by_role("tabpanel", name="Check a photo")
            panel.get_by_role("heading", name="Result").wait_for(timeout=ms)
            panel.get_by_text(shown).first.wait_for(timeout=ms)
            assert page.locator('[data-testid="stException"]').count() == 0
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui_container.png"), full_page=True)
        finally:
            browser.close()


def test_stop_leaves_nothing_behind(stack):
    FIGURES["stop_s"] = stack.stop()
    assert stack.leftovers() == []
    assert http_down(stack.api_url) and http_down(stack.ui_url)


def http_down(url: str) -> bool:
    return stacks.http_status(url, timeout=2) is None
