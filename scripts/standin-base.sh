#!/usr/bin/env bash
# Build a stand-in for a base image that cannot be pulled and tag it with that image's name.
#
# Debian bookworm (debootstrap, minbase) + python3.11 in a venv at /usr/local, so `python` and
# `pip` are where the official python:3.11-slim image has them. For apache/airflow the user
# `airflow` (uid 50000) and /opt/airflow exist as in the official image. pip in the stand-in
# skips unreachable extra indexes at once and finds wheels in /wheels when a build mounts it.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1
ROOTFS_TAR=build/standin/bookworm-rootfs.tar
ROOTFS_IMAGE=localhost/retrain-standin-rootfs:bookworm
if ! podman image exists "$ROOTFS_IMAGE"; then
  if [ ! -s "$ROOTFS_TAR" ]; then
    mkdir -p build/standin
    rootfs=$(mktemp -d build/standin/rootfs.XXXX)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$rootfs"
  fi
  podman import -q --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$ROOTFS_TAR" "$ROOTFS_IMAGE" >/dev/null
fi
extra=""
case "$base" in
  apache/airflow:*|*/apache/airflow:*)
    extra='RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
 && mkdir -p /opt/airflow && chown 50000:0 /opt/airflow && chown -R 50000:0 /usr/local
ENV AIRFLOW_HOME=/opt/airflow
WORKDIR /opt/airflow
USER 50000' ;;
esac
podman build -q -t "$base" -f - . >/dev/null <<CONTAINERFILE
FROM $ROOTFS_IMAGE
RUN python3 -m venv /usr/local && /usr/local/bin/python -m pip --version
ENV PIP_RETRIES=0 PIP_DEFAULT_TIMEOUT=60 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8
LABEL org.opencontainers.image.description="stand-in for $base built from Debian bookworm"
$extra
CONTAINERFILE
echo "images: stand-in $base ready"
