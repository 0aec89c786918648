"""How much the decoder changes what the report's backbone sees: Pillow vs ``tf.io`` features.

    ASLNB_DATA=/path/to/asl-alphabet-sample python -m benchmarks.decoder_features [--images 580]

The two decoders give pixels at most 1 level apart (``benchmarks/datapath.json``).
This runs ``images`` files, spread evenly over the folder, through the frozen
EfficientNet-Lite0 (ImageNet weights, 128 px, the ``cpu`` report's backbone and
size) with each decoder and writes ``benchmarks/decoder_features.json``: the
pixel differences, the mean relative difference of the pooled features
(mean |a - b| / mean |a|), and the smallest cosine similarity between an
image's two feature vectors.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def decoder_features(data_dir: Path, images: int = 580, image_size: int = 128,
                     backbone: str = "efficientnet_lite0") -> dict:
    """The measurement described in the module docstring, as a dict."""
    from aslnb.data.pipeline import make_dataset
    from aslnb.data.scan import scan_folder
    from aslnb.models import build_classifier, split_at_boundary

    folder = scan_folder(data_dir)
    idx = np.linspace(0, len(folder) - 1, min(images, len(folder))).round().astype(int)
    files = folder.files[idx]
    frozen, _ = split_at_boundary(build_classifier(len(folder.class_names), image_size, backbone=backbone,
                                                   weights="imagenet", freeze_until="all", head_units=[]))
    pixels, feats = {}, {}
    for decoder in ("pil", "tf"):
        ds = make_dataset((files, np.zeros(len(files), np.int64)), image_size, 32, with_labels=False, decoder=decoder)
        pixels[decoder] = np.concatenate([b.numpy() for b in ds])
        feats[decoder] = np.asarray(frozen.predict(ds, verbose=0), dtype=np.float64)
    dp = np.abs(pixels["pil"] - pixels["tf"])
    a, b = feats["pil"], feats["tf"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "data": str(data_dir), "images": len(files), "image_size": image_size, "backbone": backbone,
        "weights": "imagenet", "pixel_max_abs_diff": float(dp.max()),
        "pixel_fraction_differing": round(float((dp > 0).mean()), 4),
        "feature_mean_rel_diff": round(float(np.abs(a - b).mean() / np.abs(a).mean()), 4),
        "feature_cosine_min": round(float(cos.min()), 4), "feature_cosine_median": round(float(np.median(cos)), 5),
    }


def main(argv=None) -> int:
    from aslnb.io import write_json
    from aslnb.settings import resolve_data_dir

    parser = argparse.ArgumentParser(prog="python -m benchmarks.decoder_features", description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="training images (default: $ASLNB_DATA)")
    parser.add_argument("--images", type=int, default=580, help="images, spread over the folder (default 580, a tenth of the sample)")
    parser.add_argument("--out", default=str(HERE / "decoder_features.json"), help="JSON results")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = decoder_features(resolve_data_dir(args.data), args.images)
    write_json(Path(args.out), result)
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
