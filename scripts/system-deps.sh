#!/usr/bin/env bash
# Installs the Debian packages vom needs, only those missing. Usage: system-deps.sh run|test
# run:  what `make run` needs (libvirt headers to build libvirt-python, redis-server, qemu-img for demo pools)
# test: also a real libvirtd with QEMU (software emulation), dnsmasq, and Chromium for the browser tests.
set -euo pipefail
level=${1:-run}
pkgs=(libvirt-dev pkg-config gcc redis-server libvirt-clients libxml2-dev libcurl4-openssl-dev libssl-dev libkrb5-dev)
if [ "$level" = test ] || [ "$level" = bench ]; then
  pkgs+=(libvirt-daemon-system qemu-system-x86 qemu-utils dnsmasq-base chromium postgresql openssl)
fi
# Debian's own python3 needs these for a venv and for building libvirt-python; other builds ship them.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then pkgs+=(python3-venv); fi
if ! python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  pkgs+=(python3-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "vom needs these Debian packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# /dev/kvm: what Debian's udev rule does on an ordinary host (group kvm, mode 0660). A machine without
# udev leaves it root-only (0600); libvirtd then cannot hand it to QEMU and re-probes QEMU's
# capabilities on every getCapabilities/getVersion call (8-15 s each instead of ~15 ms).
if { [ "$level" = test ] || [ "$level" = bench ]; } && [ -c /dev/kvm ] && [ "$(id -u)" = 0 ]; then
  getent group kvm >/dev/null || groupadd --system kvm
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    echo "giving /dev/kvm group kvm, mode 0660 (as udev does)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
  # libvirt-daemon-system puts libvirt-qemu in the kvm group; a kvm group made here lacks it.
  if id libvirt-qemu >/dev/null 2>&1 && ! id -nG libvirt-qemu | grep -qw kvm; then
    usermod -a -G kvm libvirt-qemu
  fi
fi
