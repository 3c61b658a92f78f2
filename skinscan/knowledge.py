"""Disease knowledge base: one card per class id, read from knowledge.json."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

KNOWLEDGE_PATH = Path(__file__).with_name("knowledge.json")

REQUIRED_FIELDS = (
    "id",
    "name",
    "summary",
    "symptoms",
    "precautions",
    "medication",
    "see_doctor",
    "urgency",
    "urgent_signs",
    "contagious",
    "contagious_note",
    "sources",
)
LIST_FIELDS = ("symptoms", "precautions", "medication", "see_doctor", "urgent_signs", "sources")
URGENCY_LEVELS = ("self_care", "see_doctor", "urgent")
ALLOWED_SOURCE_DOMAINS = ("cdc.gov", "nhs.uk", "who.int", "aad.org")
_CAVEAT = re.compile(r"\bask (a|your) (pharmacist|doctor)", re.IGNORECASE)


@lru_cache(maxsize=1)
def load_cards() -> dict[str, dict]:
    """All cards keyed by class id (cached; treat as read-only)."""
    with KNOWLEDGE_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def card(class_id: str) -> dict:
    """The card for one class id; KeyError for unknown ids."""
    return load_cards()[class_id]


def source_host_allowed(url: str) -> bool:
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    return parsed.scheme == "https" and any(
        host == d or host.endswith("." + d) for d in ALLOWED_SOURCE_DOMAINS
    )


def validate_card(card: dict) -> list[str]:
    """Problems with one card; an empty list means the card is complete."""
    problems = []
    for field in REQUIRED_FIELDS:
        value = card.get(field)
        if value is None or (isinstance(value, (str, list)) and not value):
            problems.append(f"missing or empty field: {field}")
    for field in LIST_FIELDS:
        value = card.get(field)
        if value is not None and not isinstance(value, list):
            problems.append(f"{field} must be a list")
    if "urgency" in card and card["urgency"] not in URGENCY_LEVELS:
        problems.append(f"bad urgency: {card['urgency']!r}")
    if "contagious" in card and not isinstance(card["contagious"], bool):
        problems.append("contagious must be true or false")

    sources = card.get("sources")
    if isinstance(sources, list):
        if len(sources) < 2:
            problems.append("fewer than 2 sources")
        for src in sources:
            url = src.get("url", "") if isinstance(src, dict) else ""
            if not (isinstance(src, dict) and src.get("title")):
                problems.append(f"source without a title: {src!r}")
            if not source_host_allowed(url):
                problems.append(f"source not from an allowed body: {url!r}")

    medication = card.get("medication")
    if isinstance(medication, list) and medication:
        if not any(isinstance(m, str) and _CAVEAT.search(m) for m in medication):
            problems.append("medication lacks a pharmacist/doctor caveat")
    return problems
