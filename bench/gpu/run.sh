#!/bin/bash
# Device check of the bento path on CUDA (bench/gpu/drive.py), from .gpu/ (bench/gpu/kit.sh builds it).
# On the device: part of bench/gpu/all.sh. Rehearsal here on the CPU:
#   LOCAL=1 OUT=/tmp/x WRK_SECONDS=3 bash bench/gpu/run.sh
set -u
cd "$(dirname "$0")/../.."
: "${OUT:?}"
exec > >(tee "$OUT/device.log") 2>&1
START=$(date +%s)
echo "== $(date -u +%FT%TZ) host $(hostname) cores $(nproc) repo $PWD"
if [ -z "${LOCAL:-}" ]; then
  PY=python3; FAST=cuda
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/images/steps/src:$PWD
  echo "== wheels installed in $(( $(date +%s) - START )) s"
else
  PY=${PY:-$PWD/.venv-serving/bin/python}; FAST=cpu
  export PYTHONPATH=$PWD/images/steps/src:$PWD
fi
nvidia-smi -L 2>&1 | head -3
$PY -c "import sys, torch, bentoml, numpy, starlette, pydantic, PIL; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', '| bentoml', bentoml.__version__, '| numpy', numpy.__version__, '| starlette', starlette.__version__, '| pydantic', pydantic.__version__, '| pillow', PIL.__version__)" \
  || { echo "imports failed"; exit 1; }

# The store, copied to a fixed place; its file:// URIs (the card's bento.uri) rewritten to that place.
rm -rf /tmp/gpu-store && cp -r .gpu/store /tmp/gpu-store
$PY - <<'PYEOF' || exit 1
import json, pathlib
root = pathlib.Path("/tmp/gpu-store")
card = next(root.glob("registry/versions/*/card.json"))
old, new = json.loads(card.read_text())["bento"]["uri"].split("/registry/")[0], "file:///tmp/gpu-store"
changed = []
for path in root.rglob("*.json"):
    text = path.read_text()
    if old in text:
        path.write_text(text.replace(old, new))
        changed.append(str(path.relative_to(root)))
print(f"store: {old} -> {new} in {changed}")
print("bento uri now:", json.loads(card.read_text())["bento"]["uri"])
PYEOF

# wrk from Debian's packages; its libraries only on its own LD_LIBRARY_PATH (not the servers').
W=$PWD/.gpu/wrk; LIBS=$W/lib
LD_LIBRARY_PATH=$LIBS ldd "$W/wrk" | grep -q 'not found' && LIBS=$LIBS:$W/ssl
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$LIBS" "$W/wrk" > /tmp/wrk-run && chmod +x /tmp/wrk-run
/tmp/wrk-run --version 2>&1 | head -1

OUT=$OUT REGISTRY=file:///tmp/gpu-store/registry FAST_DEVICE=$FAST WRK=/tmp/wrk-run PYTHONUNBUFFERED=1 \
  BUDGET_S=${BUDGET_S:-280} timeout 350 $PY bench/gpu/drive.py
echo "== drive.py exit $?; total $(( $(date +%s) - START )) s"
FAST_DEVICE=$FAST timeout 40 $PY bench/gpu/bare.py
echo "== bare.py exit $?; total $(( $(date +%s) - START )) s"
