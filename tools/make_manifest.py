"""Write a hash manifest (path, sha256, bytes of every image) of a class-per-folder data set.

    python tools/make_manifest.py $ASLNB_DATA asl-alphabet-sample --source URL
    python tools/make_manifest.py $ASLNB_EXTERNAL_DATA massey-asl --source "Kaggle ayuraj/asl-dataset"

writes aslnb/data/manifests/NAME.json (package data: shipped in the wheel). Only hashes
and sizes are written; the images themselves never enter the repository.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aslnb.data.manifest import MANIFEST_DIR, build_manifest, write_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("name")
    ap.add_argument("--source", required=True, help="where the files come from (base URL or dataset name)")
    args = ap.parse_args(argv)
    manifest = build_manifest(args.folder, args.name, args.source)
    out = MANIFEST_DIR / f"{args.name}.json"
    out.parent.mkdir(exist_ok=True)
    write_manifest(manifest, out)
    print(f"{out}: {len(manifest.files)} files, {sum(s for _, s in manifest.files.values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
