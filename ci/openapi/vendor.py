#!/usr/bin/env python3
"""Builds src/sim/api/openapi/k8s-1.32.json.gz, the OpenAPI v3 schemas the simulated API server
serves for its built-in kinds (`kubectl explain`), from Kubernetes' published documents.

The input is a directory holding kubernetes/kubernetes api/openapi-spec/v3 of release-1.32 as
`api/v1.json`, `apis/<group>/<version>.json` (the layout in which kubernetes-sigs/kubectl-validate
keeps them under pkg/openapiclient/builtins/1.32). Only the group-versions the simulated cluster
serves are kept, and of each document only `components.schemas` (the paths are synthesized by
the server). Schemas are stored once and each group-version lists the ones its document has.

    python3 ci/openapi/vendor.py DIR
"""

import gzip
import json
import os
import sys

# The group-versions of src/sim/resources.rs (builtins()).
SERVED = [
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/autoscaling/v1",
    "apis/autoscaling/v2",
    "apis/policy/v1",
    "apis/storage.k8s.io/v1",
    "apis/apiextensions.k8s.io/v1",
    "apis/discovery.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/networking.k8s.io/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/authorization.k8s.io/v1",
    "apis/events.k8s.io/v1",
    "apis/scheduling.k8s.io/v1",
]

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "sim", "api", "openapi",
    "k8s-1.32.json.gz",
)


def main() -> None:
    src = sys.argv[1]
    schemas = {}
    group_versions = {}
    for gv in SERVED:
        with open(os.path.join(src, gv + ".json"), encoding="utf-8") as f:
            doc = json.load(f)
        names = sorted(doc["components"]["schemas"])
        for name in names:
            schema = doc["components"]["schemas"][name]
            if name in schemas and schemas[name] != schema:
                sys.exit(f"{name} differs between documents")
            schemas[name] = schema
        group_versions[gv] = names
    data = json.dumps(
        {"release": "1.32", "schemas": schemas, "groupVersions": group_versions},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        # mtime 0: the same input gives the same bytes.
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{len(schemas)} schemas, {len(data)} bytes, {os.path.getsize(OUT)} compressed")


if __name__ == "__main__":
    main()
