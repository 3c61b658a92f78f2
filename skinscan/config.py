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

OTHER_LABEL = "other"  # the head's 9th class: another condition or healthy skin (verdict "unknown")

# --- model ---------------------------------------------------------------
MODEL_NAME = "skinscan-effnet-lite0"
MODEL_DIR = Path(os.environ.get("SKINSCAN_MODEL_DIR", ROOT / "models" / MODEL_NAME))
BACKBONE_CACHE = Path(os.environ.get("SKINSCAN_BACKBONE_CACHE", ROOT / "models" / "backbone"))
IMAGE_SIZE = 224  # EfficientNet-Lite0 native resolution
PIXEL_MEAN = 127.0  # EfficientNet-Lite input scaling: (x - 127) / 128
PIXEL_SCALE = 128.0
TOP_K = 3  # differential size
CLOSE_CALL = 0.5  # the message names the runner-up too when its probability is at least this share of the top one
# LiteRT (XNNPACK) threads of an in-process model (`skinscan scan`, evaluation); the API uses API_MODEL_THREADS.
MODEL_THREADS = int(os.environ.get("SKINSCAN_MODEL_THREADS", str(min(os.cpu_count() or 1, 4))))

# --- data ----------------------------------------------------------------
DATA_ROOT = Path(os.environ.get("SKINSCAN_DATA", ROOT.parent / "shared" / "data"))
TRAIN_DIR = Path(os.environ.get("SKINSCAN_TRAIN_DIR", DATA_ROOT / "skin8" / "train"))
OTHER_CONDITIONS_DIR = DATA_ROOT / "other_conditions"
NON_SKIN_DIR = DATA_ROOT / "non_skin"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# --- input limits (decode step) -------------------------------------------
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
DECODE_MIN_SIDE = 512  # a JPEG with a short side of at least twice this is decoded at half size (decode.py)

# --- HTTP ----------------------------------------------------------------
API_URL = os.environ.get("SKINSCAN_API_URL", "http://127.0.0.1:3000")
MAX_BATCH_FILES = 32
MAX_DISCARD_BYTES = 64 * 1024 * 1024  # an oversized body is read and dropped up to this, then answered 413
# Serving layout (service/service.py), chosen with bench/http.py on a 2-core CPU box (README "Performance"):
#   "in_process": one BentoML service; each API worker runs the whole pipeline with its own LiteRT model.
#                 Best on CPU: no inter-process hop per image, and the workers' GILs run in parallel.
#   "composed":   the model in its own adaptive-batching service behind the API. For a node where the model runs
#                 on an accelerator or must scale apart from the CPU steps; on 2 CPU cores it was the slowest.
SERVING_LAYOUT = os.environ.get("SKINSCAN_SERVING_LAYOUT", "in_process")
API_WORKERS = int(os.environ.get("SKINSCAN_API_WORKERS", "2"))  # API worker processes: one per core
API_THREADS = int(os.environ.get("SKINSCAN_API_THREADS", "1"))  # pipeline threads per API worker
API_MODEL_THREADS = int(os.environ.get("SKINSCAN_API_MODEL_THREADS", "1"))  # LiteRT threads per API worker
API_TRACING = os.environ.get("SKINSCAN_API_TRACING", "0") == "1"  # OpenTelemetry spans per request (service.py)

DISCLAIMER = (
    "skinscan is not a medical diagnosis. It recognises only 8 skin infections from a photo and can be "
    "wrong. If you are worried, the rash is spreading, you have a fever, or it is near the eye, see a "
    "doctor or pharmacist. It does not recognise moles or skin cancer and can mistake them for an infection: "
    "show a doctor any spot that is new, changing, bleeding or not healing."
)

VERDICT_MESSAGES = {  # the plain-language "message" of every result
    "disease": "This photo looks most like {name}. This is not a diagnosis: read what to do next, and see a doctor "
               "or pharmacist if you are worried.",
    # a disease verdict whose runner-up is nearly as likely (CLOSE_CALL): the photo does not settle between the two
    "disease_or": "This photo looks most like {name}, but {second} is nearly as likely: the two can look alike in a "
                  "photo. This is not a diagnosis: read what to do next, and see a doctor or pharmacist to tell them "
                  "apart.",
    "unknown": "None of the 8 infections skinscan knows is visible in this photo. It may be healthy skin or a "
               "different skin condition, which skinscan cannot name. If the spot is small in the picture, try again "
               "with a close-up of it that fills most of the picture, in good light (photos from further away are "
               "often answered this way). If you are still worried, or it is painful, spreading, hot, blistering or "
               "you feel unwell, see a doctor or pharmacist.",
    "not_skin": "This does not look like a photo of skin, so it was not checked. Take a clear, well-lit close-up of "
                "the affected skin that fills most of the picture, and try again.",
}

# --- training ------------------------------------------------------------
SEED = 1234
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test, by near-duplicate group
UNFREEZE_FROM_BLOCK = 8  # phase 2 fine-tunes MBConv blocks 8..15 and the head conv; BatchNorm stays frozen
BACKBONE = "lite0"  # ImageNet EfficientNet-Lite variant the classifier is fine-tuned from (224 px)
HEAD_WEIGHTING = "source_sqrt"  # loss weights: classes weigh the same; within a class, a source by 1/sqrt of its count
COLOUR_CONSTANCY = False  # shades-of-grey in the model's preprocessing (training.train --colour-constancy; labels.json)
OTHER_PATCHES = 0.0  # share of "other" training views that are small patches (healthy skin around a condition)
MUTED_REDNESS = False  # darker-skin augmentation also mutes redness (erythema shows less red on darker skin)
MIXSTYLE_AFTER = ()  # backbone blocks followed by MixStyle in training (feature-statistics mixing across photos)
EPOCHS = 16  # training.train: fine-tuning epochs (8 until 2026-11-29: the training loss was still falling)
AVERAGE_FROM_EPOCH = 9  # training.train: 0 keeps the best validation epoch; N averages the weights of epochs N..last
# training.train --train-on-val: fit on the validation split too (nothing is picked on it since the weights are averaged
# over the last epochs). Measured and not kept: right answers on new sources unchanged, calibration carried over worse
TRAIN_ON_VALIDATION = False
MIXUP = 0.0  # training.train: Beta(a, a) share of mixup between the photos of a batch (0: off)
SOURCE_ADVERSARY = 0.0  # training.train: strength of the gradient-reversed source guess within each class (0: off)
# training.train --camera: phone-camera augmentation of the training views ("zoom_out", "under_exposed"); measured
# and not kept: more right answers on photos framed from further away, fewer on new sources' photos as taken
CAMERA_CONDITIONS = ()
# training.train --crop-min-area: the fine-tuning views are random crops of at least this share of the photo
CROP_MIN_AREA = 0.45
# training.train --atlas-logo: the DermNet atlas stamps its logo on every photo, and most of its photos are other
# conditions, so the model learns "logo -> other" (pasted on Kaggle validation photos of the 8 it raises "unknown" from
# 17% to 28%). This share of the other sources' training views get the logo (training.data.atlas_logo), of the 8 and
# "other" alike, when the atlas is among the training photos. Measured and not kept (0): it removes the shortcut, but
# never-seen sources tie and calibrate worse (experiments.json)
ATLAS_SOURCE = "dermnet"
ATLAS_LOGO_RATE = 0.0
LABEL_SMOOTHING = 0.0  # training.train: share of each target spread over the 9 classes in fine-tuning
HEAD_C = 1.0  # inverse L2 strength of the logistic head (phase 1 and training.crossval)
# The unknown threshold (training.crossval.choose_threshold): as many right answers as possible while no held-out
# photo source gets a disease for more than this share of its other-condition or healthy photos. The floor the
# product is held to is 0.35 on average; 0.25 on the worst source we have leaves room for sources we have not.
UNKNOWN_MAX_OUT_OF_SCOPE = 0.25
# The unknown score is 1 - the probability mass of the N likeliest diseases (skinscan.unknown_gate); training.calibrate
# tries these N and keeps the one with the most right answers under the cap above (gates.json "top_diseases"); N
# within UNKNOWN_TOP_TIE of the best count as a tie, won by the larger N: a photo split between two infections (chickenpox
# or shingles) stays in scope and its message names both.
UNKNOWN_TOP_CHOICES = (1, 2, 3)
UNKNOWN_TOP_TIE = 0.01

# --- containers (podman, no registry: deploy/images.py) ------------------
CONTAINER_CACHE = Path(os.environ.get("SKINSCAN_CONTAINER_CACHE", ROOT / "cache" / "containers"))  # wheelhouses
DEBIAN_SUITE = "bookworm"  # the local base images are debootstrapped from the host's Debian mirror
API_IMAGE = "localhost/skinscan-api:latest"
UI_IMAGE = "localhost/skinscan-ui:latest"
