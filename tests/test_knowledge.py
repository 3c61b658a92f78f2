import copy
from urllib.parse import urlparse

import pytest

from skinscan import config, knowledge

ALLOWED = ("cdc.gov", "nhs.uk", "who.int", "aad.org")


@pytest.mark.parametrize("class_id", config.CLASS_IDS)
def test_every_class_has_complete_card(class_id):
    c = knowledge.card(class_id)
    assert c["id"] == class_id
    assert knowledge.validate_card(c) == []


def test_no_extra_ids():
    assert set(knowledge.load_cards()) == set(config.CLASS_IDS)


def test_unknown_id_raises():
    with pytest.raises(KeyError):
        knowledge.card("acne")


def test_default_urgency_levels():
    expected = {
        "athlete_foot": "self_care",
        "nail_fungus": "self_care",
        "ringworm": "self_care",
        "impetigo": "see_doctor",
        "cutaneous_larva_migrans": "see_doctor",
        "chickenpox": "see_doctor",
        "cellulitis": "see_doctor",
        "shingles": "see_doctor",
    }
    assert {k: c["urgency"] for k, c in knowledge.load_cards().items()} == expected


def test_shingles_urgent_signs_mention_eye_and_nose():
    text = " ".join(knowledge.card("shingles")["urgent_signs"]).lower()
    assert "eye" in text
    assert "nose" in text
    assert "urgent care today" in text


def test_cellulitis_urgent_signs_mention_fever_and_spreading():
    text = " ".join(knowledge.card("cellulitis")["urgent_signs"]).lower()
    assert "fever" in text
    assert "spreading" in text
    assert "urgent care today" in text


def test_every_source_host_is_allowed():
    for class_id, c in knowledge.load_cards().items():
        for src in c["sources"]:
            host = urlparse(src["url"]).hostname
            assert host and any(host == d or host.endswith("." + d) for d in ALLOWED), (class_id, src)


def _good():
    return copy.deepcopy(knowledge.card("ringworm"))


def test_validate_flags_missing_symptoms():
    c = _good()
    del c["symptoms"]
    assert any("symptoms" in p for p in knowledge.validate_card(c))
    c = _good()
    c["symptoms"] = []
    assert any("symptoms" in p for p in knowledge.validate_card(c))


def test_validate_flags_bad_urgency():
    c = _good()
    c["urgency"] = "maybe"
    assert any("urgency" in p for p in knowledge.validate_card(c))


def test_validate_flags_sources():
    c = _good()
    c["sources"] = c["sources"][:1]
    assert any("sources" in p for p in knowledge.validate_card(c))
    c = _good()
    c["sources"].append({"title": "Blog", "url": "https://example.com/ringworm"})
    assert any("allowed" in p for p in knowledge.validate_card(c))
    c = _good()
    c["sources"].append({"title": "Fake", "url": "https://nhs.uk.evil.com/x"})
    assert any("allowed" in p for p in knowledge.validate_card(c))


def test_validate_flags_missing_caveat():
    c = _good()
    c["medication"] = [m for m in c["medication"] if "pharmacist" not in m.lower()]
    assert any("caveat" in p for p in knowledge.validate_card(c))


def test_contagious_false_is_not_missing():
    c = _good()
    c["contagious"] = False
    assert knowledge.validate_card(c) == []
