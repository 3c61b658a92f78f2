"""skinscan dashboard (Streamlit): check a photo, browse the 8 conditions, read the model card.

It talks to the skinscan HTTP API only, through ``skinscan.client.Client`` (``SKINSCAN_API_URL``).
Uploaded photos are sent to the API from memory and never written to disk or cached; only the API's
answer for the current photo is kept in this browser session so a rerun does not analyse it again.

    streamlit run ui/app.py
"""
from __future__ import annotations

import io
import os

import pandas as pd
import streamlit as st

from skinscan import config
from skinscan.client import Client, ClientError

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
MAX_UPLOAD_MB = max(1, config.MAX_UPLOAD_BYTES // (1 << 20))
CACHE_TTL_S = 600  # the disease cards and model card change only with a new model

# card urgency -> (alert, headline, explanation)
URGENCY = {
    "urgent": ("error", "Get urgent care today",
               "{name} can become serious quickly. Contact a doctor, urgent care or an out-of-hours service today."),
    "see_doctor": ("warning", "See a doctor",
                   "{name} usually needs a doctor's or pharmacist's assessment and often prescription treatment. "
                   "Book an appointment soon, and get help the same day if any of the urgent signs below appear."),
    "self_care": ("info", "Usually treatable at home",
                  "{name} often gets better with self-care and pharmacy treatment. See a doctor if it does not improve "
                  "or if any of the urgent signs below appear."),
}
URGENCY_SHORT = {"urgent": "urgent care today", "see_doctor": "see a doctor", "self_care": "self-care"}
CARD_SECTIONS = (
    ("Symptoms", "symptoms"),
    ("What you can do", "precautions"),
    ("Medication", "medication"),
    ("When to see a doctor", "see_doctor"),
    ("Urgent signs: get help today", "urgent_signs"),
)
SOURCE_NAMES = {"kaggle": "Kaggle web collection", "dermnet": "DermNet NZ atlas", "sd198": "SD-198 clinical photos",
                "nailweb": "toenail web photos", "mpoxweb": "monkeypox-study web photos", "tineaweb": "tinea web photos",
                "f17k": "Fitzpatrick17k atlases (skin types I-VI)", "bites": "insect-bite web photos",
                "azh": "wound-clinic skin patches", "hands11k": "hands on a white background"}
API_DOWN_HINT = "Please try again in a minute. If it keeps happening, the skinscan service may be down."
CONNECTION_CODES = {"api_unreachable", "timeout", "server_error", "bad_response", "internal_error"}
BUSY_CODES = {"busy"}  # 503 after the client's retries


# --- helpers --------------------------------------------------------------------------------------
def api_url() -> str:
    """The API address, read on every run so a changed environment is picked up."""
    return (os.environ.get("SKINSCAN_API_URL") or config.API_URL).rstrip("/")


def md(text) -> str:
    """Card and API text as literal Markdown (``$`` would otherwise start LaTeX)."""
    return str(text).replace("$", "\\$")


def pct(p, digits: int = 0) -> str:
    return "n/a" if p is None else f"{float(p) * 100:.{digits}f}%"


def prob(p) -> str:
    """A calibrated probability for people: whole percent, never a false "100%" or "0%"."""
    if p is None:
        return "n/a"
    v = float(p) * 100
    return ">99%" if v >= 99.5 else "<1%" if v < 0.5 else f"{v:.0f}%"


def num(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def show_api_error(err: ClientError) -> None:
    """A friendly message for a failed API call (never a traceback)."""
    if err.code in CONNECTION_CODES:
        st.error(f"The skinscan service is not available right now. {md(err.message)} {API_DOWN_HINT}")
    elif err.code in BUSY_CODES:
        st.warning(f"The skinscan service is busy right now. Please try again in a few seconds. ({md(err.message)})")
    else:
        st.error(f"Something went wrong asking the skinscan service: {md(err.message)}")


def show_photo_error(err: ClientError) -> None:
    """The photo was not analysed: a service problem, or the API refused this photo (4xx) and says why."""
    if err.code in CONNECTION_CODES or err.code in BUSY_CODES:
        show_api_error(err)
    else:
        st.error(f"This photo could not be checked. {md(err.message)}")


def preview(data: bytes):
    """The uploaded photo, upright (EXIF orientation) and at most 800 px, or None if it cannot be shown."""
    try:
        from PIL import Image, ImageOps

        img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        img.thumbnail((800, 800))
        return img.convert("RGB")
    except Exception:  # not an image, truncated, a bomb: the API's answer explains it
        return None


def show_photo(data: bytes | None) -> None:
    img = preview(data) if data else None
    if img is None:
        st.caption("(this file cannot be shown as a picture)")
    else:
        st.image(img, caption="Your photo", width="stretch")


def bar_chart(df: pd.DataFrame, label: str, value: str, probabilities: bool = False) -> None:
    """Horizontal bars of percentages (0-100) in the given order, full labels, the value printed on each bar
    (as ``prob`` prints it when ``probabilities``)."""
    shown = f"format(datum['{value}'], '.0f') + '%'"
    if probabilities:
        shown = f"datum['{value}'] >= 99.5 ? '>99%' : datum['{value}'] < 0.5 ? '<1%' : {shown}"
    encoding = {
        "y": {"field": label, "type": "nominal", "sort": None, "axis": {"title": None, "labelLimit": 320}},
        "x": {"field": value, "type": "quantitative", "scale": {"domain": [0, 100]}},
    }
    st.vega_lite_chart(df, {
        "height": {"step": 34},
        "transform": [{"calculate": shown, "as": "shown"}],
        "encoding": encoding,
        "layer": [
            {"mark": {"type": "bar", "tooltip": True}},
            {"mark": {"type": "text", "align": "left", "dx": 4}, "encoding": {"text": {"field": "shown"}}},
        ],
    })


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fetch_diseases(url: str) -> list[dict]:
    return Client(url).diseases()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fetch_model(url: str) -> dict:
    return Client(url).model()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fetch_figure(url: str, name: str) -> bytes:
    return Client(url).figure(name)


# --- result card ----------------------------------------------------------------------------------
def render_urgency(card: dict) -> None:
    alert, headline, text = URGENCY.get(card.get("urgency"), URGENCY["see_doctor"])
    getattr(st, alert)(f"**{headline}.** {md(text.format(name=card.get('name', 'This condition')))}")


def render_quality(quality: dict | None) -> None:
    warnings = (quality or {}).get("warnings") or []
    if not warnings:
        return
    st.subheader("Photo quality")
    st.write("The result may be less reliable because of the photo. To get a better answer:")
    for w in warnings:
        st.warning(md(w.get("message", w.get("code", ""))))


def render_differential(differential: list[dict], title: str = "Possible conditions") -> None:
    if not differential:
        return
    st.subheader(title)
    df = pd.DataFrame({
        "Condition": [e["name"] for e in differential],
        "Probability (%)": [round(float(e["probability"]) * 100, 1) for e in differential],
    })
    bar_chart(df, "Condition", "Probability (%)", probabilities=True)
    st.caption(" · ".join(f"{e['name']} {prob(e['probability'])}" for e in differential))


def render_confidence(result: dict, gates: dict | None = None) -> None:
    """The "How sure is this?" explanation: calibrated probabilities and the checks' scores."""
    skin, unknown = result.get("skin") or {}, result.get("unknown") or {}
    gates = gates or {}
    skin_thr = (gates.get("skin") or {}).get("threshold")
    unk_thr = (gates.get("unknown") or {}).get("threshold")
    sure_thr = (gates.get("unknown") or {}).get("confident")
    with st.expander("How sure is this?"):
        st.markdown(
            "**The percentages are calibrated probabilities.** After training, the model's scores were adjusted "
            "on photo collections it had never seen (the less a photo looks like one of the 8 conditions, the lower "
            "its percentages), so that a result shown as 80% was right about 8 times in 10 on our test photos. On "
            "photos unlike any it learned from they still run high: read them as how closely the photo resembles "
            "each condition. They compare only the 8 conditions skinscan knows, come from a single photo, and can be "
            "wrong: a high percentage is not a diagnosis, and \">99%\" means very confident, not certain."
        )
        st.markdown("**Three checks decide the answer:**")
        skin_line = (f"- **Is this skin?** score {num(skin.get('score'), 2)}"
                     + (f" (needs at least {num(skin_thr, 2)})" if skin_thr is not None else "")
                     + f": {'passed' if skin.get('is_skin') else 'not skin, so no condition was named'}.")
        sure_line = (f"- **Sure enough to name one?** probability of the likeliest condition, other skin conditions "
                     f"counted too: {prob(unknown.get('confidence'))}"
                     + (f" (needs at least {pct(sure_thr)})" if sure_thr is not None else "")
                     + f": {'yes' if result.get('verdict') == 'disease' else 'no'}.")
        unk_line = (f"- **Is it one of the 8 conditions?** unfamiliarity score {num(unknown.get('score'), 2)}"
                    + (f" (at least {num(unk_thr, 2)} counts as none of them)" if unk_thr is not None else "")
                    + f": {'looks unlike the 8 conditions' if unknown.get('is_unknown') else 'looks like one of them'}.")
        st.markdown("\n".join([skin_line, unk_line, sure_line]))  # in the order they decide
        st.caption("\"Unknown\" is said only when the photo looks unlike all 8, a condition is named only when the "
                   "model is sure enough, and in between skinscan says it is not sure and names the two likeliest. On "
                   "photo collections the model never saw, the limits were set so that at most "
                   f"{config.TIER_MAX_OTHER_MEAN:.0%} of other skin conditions on average ({config.TIER_MAX_OTHER_WORST:.0%} "
                   f"in any one collection) and {config.TIER_MAX_HEALTHY:.0%} of healthy skin were named as one of the 8, "
                   f"and at most {config.TIER_MAX_NONE_OF_8:.0%} of photos of the 8 were called unknown. See \"About the "
                   "model\" for how often each check is right.")
        if result.get("verdict") == "unknown" and result.get("differential"):
            st.markdown("**If it is one of the 8 after all, the closest (shares among the 8 only, shown for "
                        "information; the check above doubts it is any of them):**")
            st.markdown("\n".join(f"- {md(e['name'])}: {prob(e['probability'])}" for e in result["differential"]))
        model = result.get("model") or {}
        if model:
            st.caption(f"Model: {model.get('name', '?')} version {model.get('version', '?')}.")


def render_card(card: dict, heading: bool = True) -> None:
    """A disease card: what it is, symptoms, precautions, medication, doctor, urgent signs, contagious, sources."""
    if heading:
        st.header("About this condition")
        st.subheader(md(card.get("name", "")))
    st.markdown(md(card.get("summary", "")))
    for title, key in CARD_SECTIONS:
        items = card.get(key) or []
        if items:
            st.markdown(f"**{title}**\n" + "\n".join(f"- {md(x)}" for x in items))
    contagious = "Yes" if card.get("contagious") else "No"
    st.markdown(f"**Contagious:** {contagious}. {md(card.get('contagious_note', ''))}")
    sources = card.get("sources") or []
    if sources:
        st.markdown("**Sources**\n" + "\n".join(f"- [{md(s.get('title', s.get('url')))}]({s.get('url')})"
                                                for s in sources))


def render_headline(result: dict) -> None:
    st.header("Result")
    verdict = result.get("verdict")
    info = result.get("info")
    if verdict == "not_skin":
        st.warning(md(result.get("message") or config.VERDICT_MESSAGES["not_skin"]))
    elif verdict == "unknown":
        st.warning(md(result.get("message") or config.VERDICT_MESSAGES["unknown"]))
    elif verdict == "uncertain":  # no "Most likely" headline: the two likeliest, side by side
        pair = result.get("candidates") or []
        st.subheader("Not sure: " + " or ".join(md(e.get("name", "?")) for e in pair))
        st.warning(md(result.get("message") or "skinscan is not sure which condition this is."))
        st.markdown("**The two likeliest:** " + " and ".join(md(e.get("name", "?")) for e in pair)
                    + ". Neither is confirmed, and it may be neither: a doctor or pharmacist can tell them apart, or rule "
                      "both out.")
    else:
        disease = result.get("disease") or {}
        st.subheader(f"Most likely: {md(disease.get('name', '?'))}, {prob(disease.get('probability'))}")
        diff = result.get("differential") or []
        if len(diff) > 1 and diff[1].get("probability", 0) >= config.CLOSE_CALL * disease.get("probability", 1):
            st.markdown(f"**Nearly as likely: {md(diff[1].get('name', '?'))}, {prob(diff[1].get('probability'))}.** "
                        "The two can look alike in a photo; a doctor or pharmacist can tell them apart.")
        if info:
            render_urgency(info)


def render_result(result: dict, gates: dict | None = None, photo: bytes | None = None) -> None:
    """The result card for one API result (the dict of POST /predict), beside the photo when given."""
    verdict = result.get("verdict")
    info = result.get("info")
    if photo is not None:
        left, right = st.columns([2, 3])
        with left:
            show_photo(photo)
        with right:
            render_headline(result)
    else:
        render_headline(result)
    render_quality(result.get("quality"))
    if verdict == "disease":
        render_differential(result.get("differential") or [])
    elif verdict == "uncertain":  # shares among the 8 can read high while the photo may be none of them
        render_differential(result.get("differential") or [], "If it is one of the 8, which it looks most like "
                                                              "(shares among the 8 only)")
    render_confidence(result, gates)
    if verdict == "disease" and info:
        render_card(info)
    st.info(md(result.get("disclaimer") or config.DISCLAIMER))


# --- pages ----------------------------------------------------------------------------------------
def page_check(client: Client) -> None:
    st.write("Take or upload a clear, well-lit close-up of the affected skin. The photo is checked by the skinscan "
             "service and is not stored.")
    use_camera = st.toggle("Use my camera instead", key="use_camera")
    if use_camera:
        photo = st.camera_input("Take a photo of the skin", key="camera")
    else:
        photo = st.file_uploader("Upload a photo of the skin", type=PHOTO_TYPES, key="upload",
                                 max_upload_size=MAX_UPLOAD_MB,
                                 help="JPEG, PNG, WebP or BMP, up to %d MB." % MAX_UPLOAD_MB)
    if photo is None:
        st.session_state.pop("last_result", None)
        return
    key = (photo.file_id, photo.name, photo.size)
    last = st.session_state.get("last_result")
    if last and last["key"] == key:
        result = last["result"]
    else:
        try:
            with st.spinner("Analysing the photo..."):
                result = client.predict(photo.getvalue())
        except ClientError as err:
            st.session_state.pop("last_result", None)
            left, right = st.columns([2, 3])
            with left:
                show_photo(photo.getvalue())
            with right:
                show_photo_error(err)
            return
        st.session_state["last_result"] = {"key": key, "result": result}
    try:
        model = (fetch_model(client.url).get("test") or {}).get("model") or {}
        gates = {"unknown": {"threshold": model.get("unknown_threshold"), "confident": model.get("confident_threshold")}}
    except ClientError:
        gates = None  # the result still shows, only without the gates' thresholds
    render_result(result, gates, photo=photo.getvalue())


def page_conditions(client: Client) -> None:
    st.header("All conditions")
    try:
        cards = fetch_diseases(client.url)
    except ClientError as err:
        show_api_error(err)
        return
    st.write(f"skinscan recognises these {len(cards)} skin infections. Anything else should come back as "
             "\"unknown\", or as \"not sure\" when it looks like one of them.")
    for card in cards:
        with st.expander(f"{card['name']} · {URGENCY_SHORT.get(card.get('urgency'), card.get('urgency'))}"):
            render_card(card, heading=False)


def render_model(summary: dict, figures: dict[str, bytes] | None = None, names: dict[str, str] | None = None) -> None:
    """The model card from GET /model (``figures``: figure path -> PNG bytes, ``names``: class id -> name)."""
    names = names or {}
    test = summary.get("test") or {}
    model = test.get("model") or {}
    if model:
        st.write(f"**{md(model.get('name', config.MODEL_NAME))}** version {md(model.get('version', '?'))}: "
                 f"{md(model.get('backbone', 'EfficientNet-Lite0'))}, {model.get('input_size', config.IMAGE_SIZE)} px "
                 f"input, temperature {num(model.get('temperature'), 2)}.")
    unseen = summary.get("unseen_sources") or {}
    if unseen.get("folds"):
        st.subheader("On photos from a source it never saw")
        st.write("Each row: the model trained without that photo collection, then asked about its photos. This is the "
                 "best guess of how skinscan does on your own photos. \"Named\": the right condition, said with "
                 "confidence; \"Useful\": named, or \"not sure\" with the right one among the two it names; \"Told none of "
                 "the 8\": a photo of one of the 8 answered \"unknown\". \"When a condition is named\": the percentage "
                 "shown beside it on average, and how often it was the right one.")
        rows = []
        for source in unseen["folds"]:
            r = unseen["table"].get(source) or {}
            ins, other, healthy = r.get("in_scope") or {}, r.get("other") or {}, r.get("healthy") or {}
            named = ins.get("named") or {}
            rows.append({"Photos from": SOURCE_NAMES.get(source, source), "Named": pct(ins.get("right_answer"), 1),
                         "Useful": pct(ins.get("useful"), 1), "Not sure": pct(ins.get("uncertain"), 1),
                         "Told none of the 8": pct(ins.get("called_unknown"), 1),
                         "When a condition is named: shown": pct(named.get("mean_probability"), 1) if named else "-",
                         "...and right": pct(named.get("right"), 1) if named else "-",
                         "Other conditions given a disease": pct(other.get("given_a_disease"), 1) if other else "-",
                         "Healthy skin given a disease": pct(healthy.get("given_a_disease"), 1) if healthy else "-",
                         "Photos": ins.get("n")})
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        for source, why in (unseen.get("report_only") or {}).items():
            st.caption(f"{SOURCE_NAMES.get(source, source)}: {md(why)}.")
    st.subheader("Test results")
    cols = st.columns(4)
    cols[0].metric("Accuracy", pct(test.get("accuracy"), 1))
    cols[1].metric("Macro-F1", num(test.get("macro_f1")))
    cols[2].metric("ECE before scaling", num(test.get("ece_before_scaling")))
    cols[3].metric("ECE after scaling", num(test.get("ece_after_scaling")))
    st.caption(f"Measured on {test.get('n', '?')} held-out test photos. ECE (expected calibration error) is the gap "
               "between the stated probability and how often it was right; lower is better. The scaling is fitted for "
               "photo collections the model never saw (the table above), not for these test photos from collections it "
               "knows, so here it can read higher than before scaling.")

    split = test.get("split") or {}
    if split:
        st.subheader("Data split")
        st.write("Photos were split into train, validation and test sets by groups of near-duplicates, so copies of "
                 "one photo never sit on both sides.")
        st.dataframe(pd.DataFrame([{"Split": name, "Photos": s.get("photos", s.get("images")),
                                    "Near-duplicate groups": s.get("groups")}
                                   for name, s in split.items()]), hide_index=True)

    per_class = test.get("per_class") or {}
    if per_class:
        st.subheader("Per condition")
        st.dataframe(pd.DataFrame([{"Condition": names.get(cid, cid), "Precision": round(v.get("precision", 0), 3),
                                    "Recall": round(v.get("recall", 0), 3), "F1": round(v.get("f1", 0), 3),
                                    "Test photos": v.get("support")} for cid, v in per_class.items()]),
                     hide_index=True)

    for path, png in (figures or {}).items():
        name = path.rsplit("/", 1)[-1].removesuffix(".png")
        st.image(png, caption={"confusion_matrix": "Confusion matrix on the test split (rows: true, columns: "
                                                   "predicted)",
                               "reliability": "Reliability: stated probability vs how often it was right, before "
                                              "and after calibration"}.get(name, name.replace("_", " ")))

    render_gates(summary.get("gates") or {})


def render_gates(gates: dict) -> None:
    if gates.get("skin_method"):
        ns = gates.get("non_skin_accepted") or {}
        st.subheader("Skin check")
        st.write(f"{md(gates['skin_method'])}. Everyday photos wrongly accepted as skin: {pct(ns.get('rate'), 1)} of "
                 f"{ns.get('n', '?')} never fitted on; skin photos of the test split wrongly rejected: "
                 f"{pct(gates.get('real_skin_rejected_test'), 1)}.")
    method = gates.get("tier_method") or gates.get("unknown_method")  # a model before the three tiers: unknown_method
    if method:
        st.subheader("How the answer is decided")
        st.write(f"{md(method)}. How often it is right on photo sources it never saw is in the first table above.")


def page_about(client: Client) -> None:
    st.header("About the model")
    try:
        summary = fetch_model(client.url)
        figures = {path: fetch_figure(client.url, path) for path in summary.get("figures") or []}
        names = {c["id"]: c["name"] for c in fetch_diseases(client.url)}
    except ClientError as err:
        show_api_error(err)
        return
    render_model(summary, figures, names)


def main() -> None:
    st.set_page_config(page_title="skinscan", page_icon="🩺", layout="centered")
    st.title("skinscan")
    st.caption("Photo triage for 8 skin infections. Not a medical diagnosis.")
    client = Client(api_url())
    if not client.ready():
        st.error(f"The skinscan service is not available right now: the skinscan API at {client.url} is not "
                 f"reachable or not ready yet. {API_DOWN_HINT}")
        st.button("Try again")
        return
    check, conditions, about = st.tabs(["Check a photo", "All conditions", "About the model"])
    with check:
        page_check(client)
    with conditions:
        page_conditions(client)
    with about:
        page_about(client)


if __name__ == "__main__":
    main()
