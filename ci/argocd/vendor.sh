#!/usr/bin/env bash
# Vendors the Application and AppProject CRDs of the Argo CD release the simulated cluster's
# stand-in imitates (src/sim/gitops/argocd, VERSION) into src/sim/gitops/argocd/crds/.
#
#     ci/argocd/vendor.sh PATH_TO_ARGO_CD_CHECKOUT [TAG]
set -euo pipefail
repo=${1:?usage: vendor.sh PATH_TO_ARGO_CD_CHECKOUT [TAG]}
tag=${2:-v3.5.1}
out=$(cd "$(dirname "$0")/../.." && pwd)/src/sim/gitops/argocd/crds
for crd in application-crd appproject-crd; do
    git -C "$repo" show "$tag:manifests/crds/$crd.yaml" | gzip -9n >"$out/$crd.yaml.gz"
done
