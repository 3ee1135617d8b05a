#!/usr/bin/env bash
# Installs the k3d CLI (a single static binary) for the nightly k3d jobs. A k3d already on PATH is
# kept only if it is the wanted version: the k3d backend drives k3d v5 and was checked against
# v5.8.3.
set -euo pipefail
version="${K3D_VERSION:-v5.8.3}"
if command -v k3d >/dev/null 2>&1; then
    # `k3d version` prints `k3d version <tag>` first (cmd/root.go printVersion).
    found="$(k3d version | sed -n 's/^k3d version //p' | head -n 1)"
    if [[ "$found" == "$version" ]]; then
        k3d version
        exit 0
    fi
    echo "found k3d ${found:-of unknown version} at $(command -v k3d); installing $version"
fi
curl -fsSL "https://github.com/k3d-io/k3d/releases/download/${version}/k3d-linux-amd64" -o /tmp/k3d
sudo install -m 0755 /tmp/k3d /usr/local/bin/k3d
hash -r
k3d version
