"""Write the README's example datasets (generated shapes, no download) under data/artifacts/datasets/.

    .venv/bin/python scripts/make-example-datasets.py [--base-url http://127.0.0.1:8000]

* ``shapes-28.zip``: 28x28 grayscale image folder (circle, square, triangle) in a .zip;
* ``products/``: 32x32 RGB image folder of four classes (copy it to an S3 prefix to try ``s3://``);
* ``label-studio/export.json``: a Label Studio export whose images ``--base-url`` serves from
  ``label-studio/images/`` (``python -m http.server 8000 -d data/artifacts/datasets/label-studio/images``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.datasets import image_files, label_studio_export, write_folder, zip_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / "artifacts" / "datasets"))
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    out = Path(args.out).resolve()  # the printed file:// URIs must be absolute (file://data/x names a host)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shapes-28.zip").write_bytes(zip_bytes(image_files(("circle", "square", "triangle"), 150, 28, "L", 1),
                                                  top="shapes/"))
    write_folder(out / "products", image_files(("circle", "cross", "square", "triangle"), 120, 32, "RGB", 2))
    labelled = image_files(("circle", "cross", "triangle"), 120, 24, "L", 3)
    write_folder(out / "label-studio" / "images", labelled)
    (out / "label-studio" / "export.json").write_bytes(label_studio_export(labelled, args.base_url, unannotated=5))
    for name in ("shapes-28.zip", "products", "label-studio/export.json"):
        print(f"file://{out / name}")


if __name__ == "__main__":
    main()
