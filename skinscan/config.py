"""All of skinscan's settings in one place (paths, limits, image geometry, class ids).

Values that a deployment may change are read from environment variables.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --- classes -------------------------------------------------------------
CLASS_IDS = [
    "cellulitis",
    "impetigo",
    "athlete_foot",
    "nail_fungus",
    "ringworm",
    "cutaneous_larva_migrans",
    "chickenpox",
    "shingles",
]

# --- model ---------------------------------------------------------------
MODEL_NAME = "skinscan-effnet-lite0"
MODEL_DIR = Path(os.environ.get("SKINSCAN_MODEL_DIR", ROOT / "models" / MODEL_NAME))
BACKBONE_CACHE = Path(os.environ.get("SKINSCAN_BACKBONE_CACHE", ROOT / "models" / "backbone"))
IMAGE_SIZE = 224  # EfficientNet-Lite0 native resolution
PIXEL_MEAN = 127.0  # EfficientNet-Lite input scaling: (x - 127) / 128
PIXEL_SCALE = 128.0
TOP_K = 3  # differential size

# --- data ----------------------------------------------------------------
DATA_ROOT = Path(os.environ.get("SKINSCAN_DATA", ROOT.parent / "shared" / "data"))
TRAIN_DIR = Path(os.environ.get("SKINSCAN_TRAIN_DIR", DATA_ROOT / "skin8" / "train"))
OTHER_CONDITIONS_DIR = DATA_ROOT / "other_conditions"
NON_SKIN_DIR = DATA_ROOT / "non_skin"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# --- input limits (decode step) -------------------------------------------
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000

# --- HTTP ----------------------------------------------------------------
API_URL = os.environ.get("SKINSCAN_API_URL", "http://127.0.0.1:3000")
MAX_BATCH_FILES = 32

DISCLAIMER = (
    "skinscan is not a medical diagnosis. It recognises only 8 skin infections from a photo and can be "
    "wrong. If you are worried, the rash is spreading, you have a fever, or it is near the eye, see a "
    "doctor or pharmacist."
)

# --- training ------------------------------------------------------------
SEED = 1234
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test, by near-duplicate group
# Out-of-scope conditions never shown to the model or the gates: the "unknown" figures are measured on them.
UNKNOWN_HOLDOUT_CONDITIONS = ["atopic_dermatitis", "psoriasis", "molluscum_contagiosum", "basal_cell_carcinoma"]
UNFREEZE_FROM_BLOCK = 8  # phase 2 fine-tunes MBConv blocks 8..15 and the head conv; BatchNorm stays frozen
ATLAS_PHOTO_WEIGHT = 3.0  # loss weight of the DermNet atlas photos of the 8 (the minority source) in training
OE_WEIGHT = 0.5  # outlier exposure: weight of the uniform-target loss on other_conditions images
UNKNOWN_FALSE_RATE = 0.05  # threshold so that <= 5% of in-scope validation photos are called unknown

# --- containers (podman, no registry: deploy/images.py) ------------------
CONTAINER_CACHE = Path(os.environ.get("SKINSCAN_CONTAINER_CACHE", ROOT / "cache" / "containers"))  # wheelhouses
DEBIAN_SUITE = "bookworm"  # the local base images are debootstrapped from the host's Debian mirror
API_IMAGE = "localhost/skinscan-api:latest"
UI_IMAGE = "localhost/skinscan-ui:latest"
