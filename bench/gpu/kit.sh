#!/bin/bash
# Build .gpu/ (git-ignored), all that bench/gpu/all.sh needs on a lent GPU machine beside the repo itself:
#   whl/       the serving lock's packages the device image lacks or holds at other versions, as cp312 wheels
#              (not torch, torchvision, triton, CUDA's, numpy, pillow: the device's own torch stack serves)
#   store/     a registry with one promoted digits version and its bento (the real step CLIs and serving.package)
#   wrk/       wrk and libluajit from Debian's .deb files (dpkg -x), libssl3 beside them
#   instances.json   200 digits as JSON instances (0..16) with their targets, for answers compared cpu vs cuda
# Needs `make env image-envs` first (.venv-steps, .venv-serving). About 3 min here; 30-40 MB.
#   bash bench/gpu/kit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
NEW=$(mktemp -d "$ROOT/.gpu.new.XXXXXX")
trap 'rm -rf "$NEW"' EXIT
START=$(date +%s)

# 1. Wheels: every pin of the serving lock but the device's torch stack, for CPython 3.12 on x86-64.
SKIP='^(torch|torchvision|triton|nvidia-.*|cuda-.*|numpy|pillow|uv|setuptools|sympy|mpmath|networkx|h5py|filelock'
SKIP="$SKIP|fsspec)=="
grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*==' requirements/serving.txt | sed 's/[ ;\\].*//' | grep -Eiv "$SKIP" \
  > "$NEW/wheels.txt"
PLATFORMS=""
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1 \
         manylinux_2_31 manylinux_2_34 manylinux_2_35; do PLATFORMS="$PLATFORMS --platform ${p}_x86_64"; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS \
  -d "$NEW/whl" -r "$NEW/wheels.txt" 2>&1 | grep -v "^WARNING: Location" || true
[ "$(ls "$NEW/whl" | wc -l)" -eq "$(wc -l < "$NEW/wheels.txt")" ] || { echo "kit: a wheel is missing"; exit 1; }
echo "== wheels: $(ls "$NEW/whl" | wc -l) files, $(du -sh "$NEW/whl" | cut -f1)"

# 2. The store: the embedded digits through the real step CLIs, packaged as a bento, registered and promoted.
STORE="file://$NEW/store"
export PYTHONPATH=$ROOT/images/steps/src
STEPS="$ROOT/.venv-steps/bin/python -m retrain_steps"
$STEPS export-default --output "$STORE/src/digits.npz" >/dev/null
$STEPS download --source "$STORE/src/digits.npz" --output "$STORE/dl" >/dev/null
$STEPS preprocess --input "$STORE/dl" --output "$STORE/pp" >/dev/null
$STEPS train --input "$STORE/pp" --output "$STORE/model" --epochs 15 --device cpu --augment >/dev/null
$STEPS evaluate --data "$STORE/pp" --model "$STORE/model" --output "$STORE/eval" >/dev/null
PYTHONPATH=$ROOT/images/steps/src:$ROOT BENTOML_DO_NOT_TRACK=true $ROOT/.venv-serving/bin/python -m serving.package \
  --model "$STORE/model" --evaluation "$STORE/eval" --dataset "$STORE/dl" --registry "$STORE/registry" \
  --run-id gpu-kit >/dev/null
$ROOT/.venv-steps/bin/python - "$NEW" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
from retrain_steps import registry

new = Path(sys.argv[1])
reg = f"file://{new}/store/registry"
version = next(p.name for p in (new / "store/registry/versions").iterdir())
registry.promote(reg, version, expected=None, actor="bench/gpu/kit.sh", reason="the device check's model")
card = json.loads((new / "store/registry/versions" / version / "card.json").read_text())
print(f"== store: version {version}, test accuracy {card['metrics']['test_accuracy']:.4f}")
data = np.load(new / "store/src/digits.npz")
pick = np.random.default_rng(0).choice(len(data["target"]), 200, replace=False)
pixels = np.round(data["images"][pick].reshape(200, -1).astype(float) * 16 / 255).astype(int)
(new / "instances.json").write_text(json.dumps({"instances": pixels.tolist(), "target": data["target"][pick].tolist()}))
EOF

# 3. wrk from Debian (the device has none): unpacked, its libraries beside it.
mkdir -p "$NEW/debs" "$NEW/wrk/lib" "$NEW/wrk/ssl"
DEBS="wrk libluajit-5.1-2 libluajit-5.1-common libssl3"
(cd "$NEW/debs" && { apt-get download -q $DEBS >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get download -q $DEBS >/dev/null; }; })
for deb in "$NEW"/debs/*.deb; do dpkg -x "$deb" "$NEW/debs/x"; done
cp "$NEW/debs/x/usr/bin/wrk" "$NEW/wrk/wrk"
cp -P "$NEW"/debs/x/usr/lib/x86_64-linux-gnu/libluajit-5.1.so* "$NEW/wrk/lib/"
cp -P "$NEW"/debs/x/usr/lib/x86_64-linux-gnu/lib{ssl,crypto}.so* "$NEW/wrk/ssl/"
rm -rf "$NEW/debs"
LD_LIBRARY_PATH=$NEW/wrk/lib:$NEW/wrk/ssl "$NEW/wrk/wrk" --version 2>&1 | head -1 || true

rm -rf "$ROOT/.gpu" && mv "$NEW" "$ROOT/.gpu" && trap - EXIT
echo "== .gpu/ built in $(( $(date +%s) - START )) s: $(du -sh "$ROOT/.gpu" | cut -f1)"
