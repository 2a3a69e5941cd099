#!/usr/bin/env bash
# `make images`: build every image under images/ with docker (where an engine runs) or podman.
#
# Tags: $RETRAIN_IMAGE_REGISTRY/<role>:$RETRAIN_IMAGE_TAG, the names the step pods, the chart
# and the KFP pipeline use (roles: steps, train, serving, airflow). IMAGES="steps serving"
# builds a subset. Where a Dockerfile's base image cannot be pulled (no registry, as on these
# machines) a stand-in built from Debian's packages (debootstrap) is tagged with the FROM name,
# so the Dockerfiles stay exactly the ones users build.
set -euo pipefail
cd "$(dirname "$0")/.."

REG=${RETRAIN_IMAGE_REGISTRY:-ghcr.io/example/retrain}
TAG=${RETRAIN_IMAGE_TAG:-latest}
IMAGES=${IMAGES:-steps train serving airflow}
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
declare -A DOCKERFILE=([steps]=images/steps/Dockerfile [train]=images/train-cuda/Dockerfile
                       [serving]=images/serving/Dockerfile [airflow]=images/airflow/Dockerfile)

# What a build on this machine mounts (only when podman builds with stand-in bases): its CA bundle (pip
# behind the machine's TLS), pip's find-links folder as /wheels (the stand-in's find-links), and pip's
# extra indexes that are folders on disk (file:///DIR/simple: torch, torchvision and their nvidia-*
# wheels, GBs), each DIR as /pip-index-N with an /etc/pip.conf naming them. As find-links, pip 23 would
# still download a wheel that PyPI has under the same name; from an extra index it takes the disk's.
BUILD_MOUNTS=()
if [ "$ENGINE" = podman ]; then
  [ -f /etc/ssl/certs/ca-certificates.crt ] && BUILD_MOUNTS+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  FIND_LINKS=$(python3 -m pip config get global.find-links 2>/dev/null || true)
  [ -n "$FIND_LINKS" ] && [ -d "$FIND_LINKS" ] && BUILD_MOUNTS+=(-v "$FIND_LINKS:/wheels:ro")
  indexes=()
  for url in $(python3 -m pip config get global.extra-index-url 2>/dev/null || true); do
    case $url in file:///*/simple|file:///*/simple/) ;; *) continue ;; esac
    dir=${url#file://}; dir=${dir%/}; dir=${dir%/simple}
    [ -d "$dir/simple" ] || continue
    BUILD_MOUNTS+=(-v "$dir:/pip-index-${#indexes[@]}:ro")
    indexes+=("file:///pip-index-${#indexes[@]}/simple")
  done
  if [ ${#indexes[@]} -gt 0 ]; then
    mkdir -p build
    printf '[global]\nextra-index-url = %s\n' "${indexes[*]}" > build/pip-images.conf
    BUILD_MOUNTS+=(-v "$PWD/build/pip-images.conf:/etc/pip.conf:ro")
  fi
fi

bases_of() {  # every FROM image of a Dockerfile (ARG defaults resolved, earlier stages skipped)
  awk '
    toupper($1)=="ARG" { split($2, kv, "="); arg[kv[1]] = kv[2] }
    toupper($1)=="FROM" {
      image = $2
      if (image ~ /^\$\{/) { name = substr(image, 3, length(image) - 3); image = arg[name] }
      if (!(image in stage)) print image
      if (toupper($3)=="AS") stage[$4] = 1
    }' "$1"
}

ensure_base() {
  local base=$1
  if $ENGINE image exists "$base" 2>/dev/null || $ENGINE image inspect "$base" >/dev/null 2>&1; then return; fi
  if timeout 60 $ENGINE pull -q "$base" >/dev/null 2>&1; then return; fi
  echo "images: $base cannot be pulled; building a stand-in from Debian's packages"
  bash scripts/standin-base.sh "$base"
}

for role in $IMAGES; do
  file=${DOCKERFILE[$role]:?unknown image role $role}
  for base in $(bases_of "$file"); do ensure_base "$base"; done
  start=$(date +%s)
  $ENGINE build -q "${BUILD_MOUNTS[@]}" --build-arg GIT_COMMIT="$COMMIT" -f "$file" -t "$REG/$role:$TAG" . >/dev/null
  echo "images: built $REG/$role:$TAG from $file in $(( $(date +%s) - start )) s"
done
