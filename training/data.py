"""Data for training and evaluation: class-per-folder listing, near-duplicate groups, grouped split, augmentation."""
from __future__ import annotations

import random
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from skinscan import config
from skinscan.decode import decode_image

HASH_MAX_DISTANCE = 10  # of 64 bits: resized/re-encoded copies of one photo fall well inside this
# ... and their 16x16 colour thumbnails differ by at most this (mean absolute difference, 0-255): without it, dhash
# alone chained 398 distinct photos of every source into one "group" through low-contrast images
THUMB_MAX_DIFFERENCE = 20.0


def list_images(root: Path, class_ids=None) -> list[tuple[Path, str]]:
    """(path, class id) for every image under root/<class>/, sorted. Folder names are class ids."""
    root = Path(root)
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if class_ids is not None and folder.name not in class_ids:
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in config.IMAGE_EXTENSIONS:
                items.append((path, folder.name))
    return items


def is_atlas_photo(path) -> bool:
    """True for the DermNet NZ atlas files among the 8-class photos (the minority source, named dermnetnz_*)."""
    return Path(path).name.startswith("dermnetnz_")


def load_rgb(path: Path) -> np.ndarray:
    """Decode a file with the serving decoder (EXIF orientation, RGB conversion)."""
    return decode_image(Path(path).read_bytes())


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash: robust to resizing and re-encoding."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def fingerprint(rgb: np.ndarray) -> tuple[int, np.ndarray]:
    """(dhash, 16x16 colour thumbnail) of a photo, for ``group_near_duplicates``."""
    return dhash(rgb), cv2.resize(rgb, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)


def group_near_duplicates(fingerprints: list, max_distance: int = HASH_MAX_DISTANCE,
                          max_difference: float = THUMB_MAX_DIFFERENCE) -> list[int]:
    """Group ids: union-find over pairs of ``fingerprint``s within max_distance dhash bits and max_difference of
    thumbnail colour (copies of one photo: resized, re-encoded, slightly cropped or recoloured)."""
    parent = list(range(len(fingerprints)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (hash_i, thumb_i) in enumerate(fingerprints):
        for j in range(i + 1, len(fingerprints)):
            hash_j, thumb_j = fingerprints[j]
            if (hash_i ^ hash_j).bit_count() <= max_distance and np.abs(thumb_i - thumb_j).mean() <= max_difference:
                parent[find(i)] = find(j)
    roots = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(fingerprints))]


def grouped_split(groups: list[int], labels: list[str], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> list[str]:
    """Assign each item to 'train' / 'val' / 'test' so that a group never spans two splits.

    Stratified: within each class (a group's majority label), groups are shuffled with the seed and dealt
    so that each split gets its share of that class's images.
    """
    group_label = {}
    members = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    for g, idx in members.items():
        group_label[g] = Counter(labels[i] for i in idx).most_common(1)[0][0]
    rng = random.Random(seed)
    split_of_group = {}
    names = ("train", "val", "test")
    for cls in sorted(set(group_label.values())):
        cls_groups = sorted(g for g, lab in group_label.items() if lab == cls)
        rng.shuffle(cls_groups)
        total = sum(len(members[g]) for g in cls_groups)
        taken = {n: 0 for n in names}
        # val and test first (so the small splits are never empty), then the rest to train
        for g in cls_groups:
            size = len(members[g])
            for n, frac in zip(names[1:], fractions[1:]):
                if taken[n] + size / 2 <= frac * total:
                    split_of_group[g] = n
                    taken[n] += size
                    break
            else:
                split_of_group[g] = "train"
                taken["train"] += size
    return [split_of_group[g] for g in groups]


def split_report(splits, groups, labels) -> dict:
    """Images and groups per split and class."""
    out = {}
    for name in ("train", "val", "test"):
        idx = [i for i, s in enumerate(splits) if s == name]
        out[name] = {
            "images": len(idx),
            "groups": len({groups[i] for i in idx}),
            "per_class": dict(sorted(Counter(labels[i] for i in idx).items())),
        }
    return out


def shrink(rgb: np.ndarray, max_side: int = 320) -> np.ndarray:
    """Keep a small copy for augmentation (aspect ratio kept)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def atlas_logo(paths) -> np.ndarray | None:
    """The atlas's watermark (a white logo, bottom left of every DermNet photo) as an alpha matte, estimated from its photos:
    where the 5th percentile over the photos stands out from the rest of the bottom-left quarter is the logo; per pixel
    there, alpha = (photo - photo with that area inpainted) / (255 - inpainted), the median over photos on dark enough
    backgrounds. None with too few photos of one size to tell."""
    grey = [cv2.cvtColor(load_rgb(Path(p)), cv2.COLOR_RGB2GRAY) for p in paths]
    size = Counter(g.shape for g in grey).most_common(1)[0][0] if grey else None
    grey = [g for g in grey if g.shape == size]
    if len(grey) < 50:
        return None
    h, w = size
    quarter = (slice(h // 2, h), slice(0, w // 2))
    low = np.percentile(np.stack([g[quarter] for g in grey]).astype(np.float32), 5, axis=0)
    floor = np.median(low)
    mask = np.zeros((h, w), np.uint8)
    mask[quarter] = (low - floor) > 0.08 * (255 - floor)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    alphas = []
    for g in grey:
        background = cv2.inpaint(g, mask, 7, cv2.INPAINT_TELEA).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            alphas.append(np.where((mask > 0) & (background < 175), (g - background) / (255 - background), np.nan))
    with warnings.catch_warnings():  # outside the logo every pixel is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        alpha = np.nan_to_num(np.clip(np.nanmedian(np.stack(alphas), axis=0), 0, 1))
    return np.where(alpha >= 0.05, alpha, 0).astype(np.float32)


def paste_logo(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` with the logo of ``atlas_logo`` where the atlas puts it: scaled to the photo's width, bottom left."""
    h, w = rgb.shape[:2]
    a = cv2.resize(alpha, (w, max(1, round(alpha.shape[0] * w / alpha.shape[1]))), interpolation=cv2.INTER_AREA)
    full = np.zeros((h, w, 1), np.float32)
    rows = min(h, len(a))
    full[h - rows :, :, 0] = a[len(a) - rows :]
    return np.clip(full * 255 + (1 - full) * rgb, 0, 255).astype(np.uint8)


def augment(rgb: np.ndarray, rng: np.random.Generator, min_area: float = config.CROP_MIN_AREA) -> np.ndarray:
    """Skin-photo augmentation on uint8 RGB: random crop/zoom (``min_area`` of the photo or more), flips, rotation,
    brightness/contrast/hue jitter.

    The result still goes through the shared ``to_model_input`` (resize + scaling).
    """
    h, w = rgb.shape[:2]
    area = rng.uniform(min_area, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    img = rgb[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    img = np.ascontiguousarray(np.rot90(img, int(rng.integers(0, 4))))
    angle = rng.uniform(-20, 20)
    hh, ww = img.shape[:2]
    m = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0 + abs(angle) / 60)
    img = cv2.warpAffine(img, m, (ww, hh), borderMode=cv2.BORDER_REFLECT_101)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180  # hue jitter (OpenCV hue is 0..180)
    hsv[..., 1] *= rng.uniform(0.75, 1.25)
    img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
    img = (img - img.mean()) * contrast + img.mean() + brightness
    return np.clip(img, 0, 255).astype(np.uint8)


def skin_patch(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small random patch (5-25% of the photo): from a photo of another condition, mostly the normal skin around
    it, so "other" also covers close-ups of healthy skin (the data has healthy feet and nails only)."""
    h, w = rgb.shape[:2]
    side = np.sqrt(rng.uniform(0.05, 0.25) * h * w)
    ch, cw = int(min(h, max(16, side))), int(min(w, max(16, side)))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return rgb[y0 : y0 + ch, x0 : x0 + cw]


def darker_skin_tone(rgb: np.ndarray, rng: np.random.Generator, muted_redness: bool = False) -> np.ndarray:
    """A darker-skinned rendering of a photo (CIELAB), so neither gate nor classifier learns "skin = light pink":
    lightness scaled down; with ``muted_redness``, redness contrast around the photo's median colour muted and the
    tone shifted towards brown, as erythema shows less red on darker skin."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= rng.uniform(0.35, 0.7)
    if muted_redness:
        centre = np.median(lab[..., 1:].reshape(-1, 2), axis=0)
        lab[..., 1:] = centre + (lab[..., 1:] - centre) * rng.uniform(0.4, 0.9)
        lab[..., 1] += rng.uniform(-2, 6)
        lab[..., 2] += rng.uniform(0, 12)
    else:
        lab[..., 1:] = 128 + (lab[..., 1:] - 128) * rng.uniform(0.8, 1.2)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def zoom_out(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The spot smaller in the frame, as a phone photo taken from further away: the photo at 50-95% of each side, at
    a random place, on a surround continued from its own edges (reflected and blurred, so no second sharp lesion)
    or on a flat colour of its border."""
    h, w = rgb.shape[:2]
    s = rng.uniform(0.5, 0.95)
    ph, pw = int(h / s) - h, int(w / s) - w
    top, left = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
    pads = (top, ph - top, left, pw - left)
    if rng.random() < 0.7:
        canvas = cv2.GaussianBlur(cv2.copyMakeBorder(rgb, *pads, cv2.BORDER_REFLECT_101), (0, 0), max(h, w) / 40)
        canvas = (canvas.astype(np.float32) * rng.uniform(0.6, 1.0)).astype(np.uint8)
    else:
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        canvas = np.empty((h + ph, w + pw, 3), np.uint8)
        canvas[:] = np.median(border, axis=0).astype(np.uint8)
    canvas[top : top + h, left : left + w] = rgb
    return canvas


def under_exposed(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indoor light on a phone: under-exposed (gamma 1.2-2.0), sensor noise, then brightened by the camera."""
    gain = rng.uniform(0.4, 0.8)
    x = (rgb.astype(np.float32) / 255) ** rng.uniform(1.2, 2.0) * gain
    x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape)
    return np.clip(x / np.sqrt(gain) * 255, 0, 255).astype(np.uint8)


def camera_conditions(rgb: np.ndarray, rng: np.random.Generator, which=()) -> np.ndarray:
    """What a user's own phone photo adds to the collections' close-ups (``training.train --camera``): framing from
    further away and indoor exposure, each at random (bench.robustness measures the served model under both).
    Measured and not kept (experiments.json "phone-camera augmentation")."""
    if "zoom_out" in which and rng.random() < 0.3:
        rgb = zoom_out(rgb, rng)
    if "under_exposed" in which and rng.random() < 0.2:
        rgb = under_exposed(rgb, rng)
    return rgb


def photo_conditions(rgb: np.ndarray, rng: np.random.Generator, muted_redness: bool = False) -> np.ndarray:
    """What differs between photo collections, so the model cannot key on it: skin tone, colour cast, resolution,
    blur, JPEG quality and text/watermark overlays (each applied at random)."""
    img = rgb
    if rng.random() < 0.3:
        img = darker_skin_tone(img, rng, muted_redness)
    if rng.random() < 0.5:  # colour cast of another camera / light
        img = np.clip(img.astype(np.float32) * rng.uniform(0.85, 1.15, 3), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    if rng.random() < 0.3:  # low resolution (web thumbnails), scaled back up
        s = rng.uniform(0.25, 0.6)
        small = cv2.resize(img, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    if rng.random() < 0.25:  # a watermark or caption
        img = img.copy()
        text = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .")) for _ in range(int(rng.integers(4, 14))))
        colour = (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0)
        scale = rng.uniform(0.4, 1.2) * w / 320
        org = (int(rng.integers(0, max(1, w // 2))), int(rng.integers(h // 8, h)))
        overlay = img.copy()
        cv2.putText(overlay, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, int(2 * scale)), cv2.LINE_AA)
        alpha = rng.uniform(0.4, 1.0)
        img = cv2.addWeighted(overlay, alpha, img, 1 - alpha, 0)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        img = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return img


def plain_background_crop(rgb: np.ndarray) -> np.ndarray:
    """A photo on a plain light background (the hands collection: whole hands on white) cut to the middle of its subject,
    so that "other" (healthy skin) cannot be learned from a white background; any other photo is returned unchanged.
    Training only: the served model sees the whole photo."""
    h, w = rgb.shape[:2]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    light = (hsv[..., 2] > 200) & (hsv[..., 1] < 40)
    if np.r_[light[0], light[-1], light[:, 0], light[:, -1]].mean() < 0.6:
        return rgb
    ys, xs = np.where(~light)
    if len(ys) < 0.05 * h * w:
        return rgb
    (y0, y1), (x0, x1) = np.percentile(ys, [20, 80]).astype(int), np.percentile(xs, [20, 80]).astype(int)
    return rgb[y0 : y1 + 1, x0 : x1 + 1] if min(y1 - y0, x1 - x0) >= 24 else rgb


def load_training_photo(path: Path, max_side: int = 320) -> np.ndarray:
    """A photo as training sees it: decoded, a plain background cut away (``plain_background_crop``), shrunk."""
    return shrink(plain_background_crop(load_rgb(path)), max_side)
