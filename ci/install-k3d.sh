#!/usr/bin/env bash
# Installs the k3d CLI (a single static binary) for the nightly k3d jobs.
set -euo pipefail
version="${K3D_VERSION:-v5.8.3}"
if command -v k3d >/dev/null 2>&1; then
    k3d version
    exit 0
fi
curl -fsSL "https://github.com/k3d-io/k3d/releases/download/${version}/k3d-linux-amd64" -o /tmp/k3d
sudo install -m 0755 /tmp/k3d /usr/local/bin/k3d
k3d version
