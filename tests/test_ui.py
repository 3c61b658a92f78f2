"""The Streamlit dashboard (ui/app.py) against a real `bentoml serve`: AppTest, and a real Chromium end to end.

* AppTest drives the app script in-process (tabs, the file uploader with a real photo, the API-down case).
* The browser test starts `streamlit run`, uploads a real shingles photo through the page's file input in
  headless Chromium (Debian's /usr/bin/chromium; skipped when absent) and saves a screenshot to
  tests/artifacts/ui_result.png.
"""
from __future__ import annotations

import contextlib
import copy
import json
import sys
from pathlib import Path

import pytest

from skinscan import config, knowledge
from skinscan.client import Client, ClientError
from conftest import ARTIFACTS, DROP, ROOT, Scripted, free_port, start_server, stop_server

APP = str(ROOT / "ui" / "app.py")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_S = 120  # one AppTest run: the machine is slow and the first prediction warms the model up
TABS = ["Check a photo", "All conditions", "About the model"]
N_CANDIDATES = 8


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=TIMEOUT_S)


def texts(at) -> str:
    """All text the app showed in one run (markdown, headings, alerts, captions, expander labels), joined."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [e.label for e in at.expander]
    return "\n".join(parts)


def pct(p: float) -> str:
    """How the app prints a calibrated probability: whole percent, never "100%" or "0%"."""
    v = p * 100
    return ">99%" if v >= 99.5 else "<1%" if v < 0.5 else f"{v:.0f}%"


# --- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shingles_photos(data_root) -> list[Path]:
    folder = data_root / "skin8" / "train" / "shingles"
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in config.IMAGE_EXTENSIONS) if folder.is_dir() \
        else []
    if not photos:
        pytest.skip(f"no shingles photos in {folder}")
    return photos


@pytest.fixture(scope="module")
def sample(api_url, shingles_photos) -> tuple[Path, dict]:
    """The first shingles photo (sorted) and its real API result.

    The result card and disease card need a "disease" verdict: when the first photo gets another verdict, the first
    of the next few (sorted) that gets one is used instead.
    """
    candidates = shingles_photos[:N_CANDIDATES]
    results = Client(api_url, timeout=300).predict_batch(candidates)
    for path, result in zip(candidates, results):
        if result.get("verdict") == "disease":
            return path, result
    pytest.fail(f"none of the first {len(candidates)} shingles photos got a 'disease' verdict: "
                f"{[r.get('verdict', r.get('error')) for r in results]}")


@pytest.fixture
def ui_env(api_url, monkeypatch) -> str:
    monkeypatch.setenv("SKINSCAN_API_URL", api_url)
    return api_url


# --- the client the app uses --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_client_talks_to_api(api_url, sample):
    client = Client(api_url)
    assert client.ready()
    cards = client.diseases()
    assert [c["id"] for c in cards] == config.CLASS_IDS
    summary = client.model()
    assert 0 <= summary["test"]["accuracy"] <= 1
    for path in summary["figures"]:
        assert client.figure(path).startswith(b"\x89PNG")
    assert client.figure("reliability").startswith(b"\x89PNG")
    path, result = sample
    assert client.predict(path.read_bytes())["differential"] == result["differential"]  # bytes and path agree
    with pytest.raises(ClientError) as err:
        client.predict(b"this is not an image")
    assert 400 <= err.value.status < 500 and err.value.code and err.value.message
    assert err.value.message in str(err.value)
    with pytest.raises(ClientError) as err:
        client.figure("nope")
    assert err.value.status == 404 and err.value.code == "not_found"


def test_client_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url, timeout=5)
    assert client.ready() is False
    with pytest.raises(ClientError) as err:
        client.diseases()
    assert err.value.code == "api_unreachable" and err.value.status is None
    assert "is not reachable" in str(err.value) and url in str(err.value)


# --- AppTest ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_app_renders(ui_env):
    at = app_test().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.label for t in at.tabs] == TABS
    assert len(at.file_uploader) == 1
    assert {t.lstrip(".") for t in at.file_uploader[0].allowed_type} == {"jpg", "jpeg", "png", "webp", "bmp"}
    assert "Not a medical diagnosis" in texts(at)
    at.toggle[0].set_value(True).run()  # the camera instead of the uploader
    assert not at.exception
    assert len(at.camera_input) == 1 and len(at.file_uploader) == 0


@pytest.mark.slow
def test_conditions_page_lists_8(ui_env):
    at = app_test().run()
    assert not at.exception
    conditions = at.tabs[1]
    assert [e.label.rsplit(" · ", 1)[0] for e in conditions.expander] == [knowledge.card(c)["name"] for c in config.CLASS_IDS]
    shown = "\n".join(m.value for m in conditions.markdown)
    for cid in config.CLASS_IDS:
        card = knowledge.card(cid)
        assert card["summary"] in shown
        assert all(s["url"] in shown for s in card["sources"])


@pytest.mark.slow
def test_about_page_shows_accuracy(ui_env):
    summary = Client(ui_env).model()
    at = app_test().run()
    assert not at.exception
    about = at.tabs[2]
    metrics = {m.label: m.value for m in about.metric}
    assert metrics["Accuracy"] == f"{summary['test']['accuracy'] * 100:.1f}%"
    assert metrics["Macro-F1"] == f"{summary['test']['macro_f1']:.3f}"
    assert metrics["ECE before scaling"] == f"{summary['test']['ece_before_scaling']:.3f}"
    assert metrics["ECE after scaling"] == f"{summary['test']['ece_after_scaling']:.3f}"
    assert len(about.image) >= len(summary["figures"]) == 2
    headers = [h.value for h in about.subheader]
    assert "Skin check" in headers and "How the answer is decided" in headers
    assert headers[0] == "On photos from a source it never saw"
    unseen = next(d.value for d in about.dataframe if "Named" in d.value.columns)
    assert len(unseen) == len(summary["unseen_sources"]["folds"])
    first = summary["unseen_sources"]["table"][summary["unseen_sources"]["folds"][0]]["in_scope"]
    assert unseen["Named"][0] == f"{first['right_answer'] * 100:.1f}%"
    assert unseen["Useful"][0] == f"{first['useful'] * 100:.1f}%"
    assert unseen["...and right"][0] == f"{first['named']['right'] * 100:.1f}%"  # how sure it sounds vs how often right
    assert unseen["When a condition is named: shown"][0] == f"{first['named']['mean_probability'] * 100:.1f}%"
    per_class = next(d.value for d in about.dataframe if "Recall" in d.value.columns)
    assert list(per_class["Condition"]) == [knowledge.card(c)["name"] for c in summary["test"]["per_class"]]


@pytest.mark.slow
def test_upload_shows_result_card(ui_env, sample):
    path, result = sample
    at = app_test().run()
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    problems = [e.value for e in at.error if "Get urgent care today" not in e.value]  # an urgent card is an st.error
    assert not problems
    check = at.tabs[0]
    assert [h.value for h in check.header] == ["Result", "About this condition"]
    assert len(check.image) == 1  # the uploaded photo, beside its result
    disease, info = result["disease"], result["info"]
    assert f"Most likely: {disease['name']}, {pct(disease['probability'])}" in [s.value for s in check.subheader]
    urgency_box = {"urgent": check.error, "see_doctor": check.warning, "self_care": check.info}[info["urgency"]]
    headline = {"urgent": "Get urgent care today", "see_doctor": "See a doctor",
                "self_care": "Usually treatable at home"}[info["urgency"]]
    assert any(headline in e.value for e in urgency_box)
    shown = texts(check)
    assert info["summary"] in shown and info["symptoms"][0] in shown and info["urgent_signs"][0] in shown
    assert all(s["url"] in shown for s in info["sources"])
    assert result["disclaimer"] in [e.value for e in check.info]
    assert "How sure is this?" in [e.label for e in check.expander]
    assert f"{result['skin']['score']:.2f}" in shown
    for e in result["differential"]:
        assert f"{e['name']} {pct(e['probability'])}" in shown
    for w in result["quality"]["warnings"]:
        assert w["message"] in [e.value for e in check.warning]
    # the answer is kept for this photo only: a rerun does not analyse it again, removing the photo clears it
    stored = at.session_state["last_result"]["result"]
    assert {k: v for k, v in stored.items() if k != "timings_ms"} == {k: v for k, v in result.items() if k != "timings_ms"}
    at.run()
    assert at.session_state["last_result"]["result"]["timings_ms"] == stored["timings_ms"]  # not sent again
    at.file_uploader[0].clear().run()
    assert not at.exception and "last_result" not in at.session_state and not at.tabs[0].header


def _render(app_path: str, result: dict, gates: dict | None = None) -> None:
    """AppTest script: render one result with the app's own render function."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("skinscan_ui_app", app_path)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.render_result(result, gates)


@pytest.mark.slow
@pytest.mark.parametrize("verdict", ["not_skin", "unknown"])
def test_render_result_without_disease(sample, verdict):
    """The not-skin and unknown messages, on a real result turned into that verdict the way the pipeline does."""
    from streamlit.testing.v1 import AppTest

    result = copy.deepcopy(sample[1])
    result.update(verdict=verdict, disease=None, info=None, candidates=[])
    if verdict == "not_skin":
        result.update(differential=[], skin={"is_skin": False, "score": 0.02})
    else:
        result["unknown"]["is_unknown"] = True
    result["quality"] = {"ok": False, "warnings": [{"code": "blurry", "message": "The photo looks blurry. Hold still."}],
                         "metrics": result["quality"]["metrics"]}
    result["message"] = config.VERDICT_MESSAGES[verdict]
    at = AppTest.from_function(_render, args=(APP, result), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    expected = "This does not look like a photo of skin" if verdict == "not_skin" else \
        "This photo does not look like any of the 8 infections skinscan knows"
    assert any(w.startswith(expected) for w in warnings), warnings
    assert "The photo looks blurry. Hold still." in warnings
    assert [h.value for h in at.header] == ["Result"]  # no disease card
    assert not any(s.value.startswith("Most likely") for s in at.subheader)
    assert result["disclaimer"] in [i.value for i in at.info]


def test_uncertain_result_names_both_without_a_headline(uncertain_sample):
    """A real "uncertain" result (conftest): a warning, not a "Most likely" headline; both candidates named (no
    percentage beside them: the shares among the 8 can read high when the photo may be none of them), the
    differential, what to do; no disease card."""
    from streamlit.testing.v1 import AppTest

    result = uncertain_sample[1]
    a, b = result["candidates"]
    gates = {"unknown": {"threshold": 0.13, "confident": 0.62}}
    at = AppTest.from_function(_render, args=(APP, result, gates), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(s.value.startswith("Most likely") for s in at.subheader)
    assert f"Not sure: {a['name']} or {b['name']}" in [s.value for s in at.subheader]
    assert result["message"] in [w.value for w in at.warning] and "doctor or pharmacist" in result["message"]
    shown = texts(at)
    assert f"**The two likeliest:** {a['name']} and {b['name']}" in shown and "it may be neither" in shown
    assert all(f"{e['name']} {pct(e['probability'])}" in shown for e in result["differential"])  # the chart's caption
    assert len(at.get("vega_lite_chart")) == 1
    assert [h.value for h in at.header] == ["Result"]  # no disease card
    assert f"{pct(result['unknown']['confidence'])} (needs at least 62%): no" in shown  # "How sure is this?"
    assert "(at least 0.13 counts as none of them): looks like one of them" in shown


@pytest.mark.parametrize("second_probability", [0.40, 0.10])
def test_close_call_shows_the_runner_up(sample, second_probability):
    """A disease result whose runner-up is nearly as likely shows both in the headline; a clear one shows one."""
    from streamlit.testing.v1 import AppTest

    result = copy.deepcopy(sample[1])
    first = result["differential"][0]
    result.update(verdict="disease", disease={**first, "probability": 0.55})
    result["differential"] = [{**first, "probability": 0.55}, {**result["differential"][1], "probability": second_probability},
                              {**result["differential"][2], "probability": 0.45 - second_probability}]
    at = AppTest.from_function(_render, args=(APP, result), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith(f"Most likely: {first['name']}") for s in at.subheader)
    shown = [m.value for m in at.markdown if m.value.startswith("**Nearly as likely")]
    if second_probability >= config.CLOSE_CALL * 0.55:
        assert shown and result["differential"][1]["name"] in shown[0]
    else:
        assert not shown


def test_api_down_shows_friendly_error(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("SKINSCAN_API_URL", url)
    at = app_test().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1
    assert "not available right now" in at.error[0].value and url in at.error[0].value
    at.button[0].click().run()  # "Try again"
    assert not at.exception and len(at.error) == 1


# --- real browser -----------------------------------------------------------------------------------------------
BROWSER_MS = 90_000


@contextlib.contextmanager
def browser_upload(api_url: str, photo: Path):
    """`streamlit run` against ``api_url``, the page in headless Chromium, ``photo`` uploaded: yields the page and the
    "Check a photo" panel once its "Result" heading shows."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = start_server(cmd, f"http://127.0.0.1:{port}/_stcore/health", "ui", env={"SKINSCAN_API_URL": api_url})
    ms = BROWSER_MS
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=ms)
                page.get_by_role("tab", name="Check a photo").wait_for(timeout=ms)
                page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo), timeout=ms)
                panel = page.get_by_role("tabpanel", name="Check a photo")  # the other tabs hold cards too
                panel.get_by_role("heading", name="Result").wait_for(timeout=ms)
                yield page, panel
            finally:
                browser.close()
    finally:
        stop_server(proc)


def screenshot(page, name: str) -> Path:
    """The whole page to tests/artifacts/``name``."""
    # Streamlit scrolls inside its main container: grow the viewport so the screenshot shows the page
    height = page.evaluate("() => Math.max(document.body.scrollHeight, "
                           "...[...document.querySelectorAll('[data-testid=stMain], section')]"
                           ".map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 100, 12000)})
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    return ARTIFACTS / name


@pytest.mark.slow
def test_browser_upload_shows_result(api_url, sample):
    path, result = sample
    ms = BROWSER_MS
    with browser_upload(api_url, path) as (page, panel):
        panel.get_by_role("heading", name="About this condition").wait_for(timeout=ms)
        disease, info = result["disease"], result["info"]
        panel.get_by_text(f"Most likely: {disease['name']}, {pct(disease['probability'])}").wait_for(timeout=ms)
        panel.get_by_text(info["summary"]).wait_for(timeout=ms)
        panel.get_by_text(result["disclaimer"]).wait_for(timeout=ms)
        assert panel.get_by_role("link", name=info["sources"][0]["title"]).count() == 1
        panel.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=ms)  # the differential
        assert page.locator('[data-testid="stException"]').count() == 0
        shot = screenshot(page, "ui_result.png")
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_browser_shows_an_uncertain_result(uncertain_sample):
    """A real "uncertain" result (conftest), answered by a scripted API: the page names both candidates in a warning,
    shows the differential, and has no "Most likely" headline and no disease card."""
    path, result = uncertain_sample
    a, b = result["candidates"]
    ms = BROWSER_MS
    with Scripted(routes=stub_routes(result)) as api, browser_upload(api.url, path) as (page, panel):
        panel.get_by_text(f"Not sure: {a['name']} or {b['name']}").wait_for(timeout=ms)
        alert = panel.get_by_role("alert").filter(has_text=result["message"][:60])
        alert.first.wait_for(timeout=ms)
        assert a["name"] in alert.first.inner_text() and b["name"] in alert.first.inner_text()
        panel.get_by_text(f"{a['name']} and {b['name']}", exact=False).first.wait_for(timeout=ms)
        panel.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=ms)  # the differential
        panel.get_by_text(result["disclaimer"]).wait_for(timeout=ms)
        assert panel.get_by_text("Most likely").count() == 0
        assert panel.get_by_role("heading", name="About this condition").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        shot = screenshot(page, "ui_uncertain.png")
    assert shot.stat().st_size > 10_000


# --- API failures the user must see explained -----------------------------------------------------------------
def json_answer(body, status: int = 200, headers: dict | None = None):
    return (status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode(), 0)


def stub_routes(sample_result: dict | None = None, **override) -> dict:
    """A scripted API that is ready and answers like the real one, except for ``override`` (path -> answers)."""
    cards = [knowledge.card(c) for c in config.CLASS_IDS]
    routes = {"/readyz": [(200, {}, b"", 0)], "/diseases": [json_answer(cards)],
              "/model": [json_answer({"test": {}, "gates": {}, "figures": []})],
              "/predict": [json_answer(sample_result or {})]}
    routes.update(override)
    return routes


def upload(at, data: bytes, name: str = "photo.jpg"):
    return at.file_uploader[0].set_value((name, data, "image/jpeg")).run()


@pytest.mark.slow
def test_rejected_photo_shows_the_reason(ui_env):
    at = app_test().run()
    upload(at, b"this is a text file, not a photo", "notes.jpg")
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.tabs[0].error]
    assert len(errors) == 1 and errors[0].startswith("This photo could not be checked.")
    assert "not an image" in errors[0]  # the API's own explanation
    assert "cannot be shown as a picture" in texts(at.tabs[0])
    assert not at.tabs[0].header  # no result card


def test_api_dies_after_the_page_loaded(monkeypatch, sample_photo_bytes):
    server = Scripted(routes=stub_routes())
    monkeypatch.setenv("SKINSCAN_API_URL", server.url)
    at = app_test().run()
    assert not at.exception and [t.label for t in at.tabs] == TABS
    server.close()  # the API goes away while the page is open
    upload(at, sample_photo_bytes)
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "not available right now" in at.error[0].value


def test_api_drops_the_request_for_the_photo(monkeypatch, sample_photo_bytes):
    """Ready, but the connection dies during POST /predict (the client retries, then gives up)."""
    with Scripted(routes=stub_routes(**{"/predict": [DROP]})) as server:
        monkeypatch.setenv("SKINSCAN_API_URL", server.url)
        at = app_test().run()
        upload(at, sample_photo_bytes)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.tabs[0].error]
    assert len(errors) == 1 and "not available right now" in errors[0] and "not reachable" in errors[0]
    assert len(at.tabs[0].image) == 1  # the photo is still shown beside the message


def test_api_busy_and_internal_error(monkeypatch, sample_photo_bytes):
    busy = json_answer({"error": {"code": "busy", "message": "skinscan is busy; try again in a few seconds."}}, 503,
                       {"Retry-After": "0"})
    with Scripted(routes=stub_routes(**{"/predict": [busy]})) as server:
        monkeypatch.setenv("SKINSCAN_API_URL", server.url)
        at = app_test().run()
        upload(at, sample_photo_bytes)
    assert not at.exception
    assert any("busy right now" in w.value for w in at.tabs[0].warning) and not at.tabs[0].error
    broken = json_answer({"error": {"code": "internal_error", "message": "Something went wrong on our side."}}, 500)
    with Scripted(routes=stub_routes(**{"/predict": [broken]})) as server:
        monkeypatch.setenv("SKINSCAN_API_URL", server.url)
        at = app_test().run()
        upload(at, sample_photo_bytes)
    assert not at.exception
    assert len(at.tabs[0].error) == 1 and "not available right now" in at.tabs[0].error[0].value


@pytest.mark.slow
def test_model_card_fails_but_results_still_show(monkeypatch, sample):
    path, result = sample
    page = (500, {"Content-Type": "text/html"}, b"<h1>Internal Server Error</h1>", 0)
    with Scripted(routes=stub_routes(result, **{"/model": [page]})) as server:
        monkeypatch.setenv("SKINSCAN_API_URL", server.url)
        at = app_test().run()
        about_errors = [e.value for e in at.tabs[2].error]
        assert len(about_errors) == 1 and "not available right now" in about_errors[0]
        upload(at, path.read_bytes(), path.name)
    assert not at.exception, [e.value for e in at.exception]
    check = at.tabs[0]
    assert [h.value for h in check.header] == ["Result", "About this condition"]  # without the gates' thresholds
    assert f"Most likely: {result['disease']['name']}" in check.subheader[0].value


@pytest.fixture(scope="module")
def sample_photo_bytes() -> bytes:
    folder = config.DATA_ROOT / "skin8" / "train" / "shingles"
    if not folder.is_dir():
        pytest.skip(f"no data at {folder}")
    return sorted(folder.iterdir())[0].read_bytes()
