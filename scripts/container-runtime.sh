#!/usr/bin/env bash
# Make a container runtime usable for `make images` and the `containers` test suite.
#
# A working docker or podman is used as it is. Otherwise, on a Debian machine where we are
# root (CI and these dev machines), podman + runc + debootstrap are installed from Debian and
# podman is configured as ../shared/SETUP.md describes (runc: crun refuses cgroups in hybrid
# mode; explicit ulimits: the defaults are refused). Elsewhere it says why and exits 0: the
# containers suite then skips with that reason.
set -euo pipefail

if docker info >/dev/null 2>&1; then echo "container runtime: docker"; exit 0; fi
if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "container runtime: none (podman missing and cannot install it: needs root and apt-get)"; exit 0
  fi
  echo "container runtime: installing podman, runc, debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
conf=/etc/containers/containers.conf
if [ "$(id -u)" = 0 ] && ! grep -q '^runtime *= *"runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  if [ -s "$conf" ]; then cp "$conf" "$conf.bak"; fi
  cat > "$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]
[engine]
runtime = "runc"
CONF
fi
podman info --format 'container runtime: podman {{.Version.Version}}, {{.Host.OCIRuntime.Name}}' 
