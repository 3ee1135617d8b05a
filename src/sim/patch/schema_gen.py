#!/usr/bin/env python3
"""Generates schema_table.rs: the merge metadata of the built-in Kubernetes types.

The strategic merge patch of the API server reads the Go struct tags `patchStrategy` and
`patchMergeKey` of the typed object; server-side apply reads the `+listType`, `+listMapKey`,
`+mapType` and `+structType` markers (falling back to the patch strategy). This script reads
those facts from the Go sources of k8s.io/api, k8s.io/apimachinery and
k8s.io/apiextensions-apiserver (checked-out git repositories, at the given tag) and writes them
as Rust statics. Only field names, types and merge metadata are extracted.

Usage: schema_gen.py <api-repo> <apimachinery-repo> <apiextensions-repo> <tag> > schema_table.rs
"""

import re
import subprocess
import sys

API, MACHINERY, APIEXT, TAG = sys.argv[1:5]

# (repository, path in repository, Go import path, group, short package key)
PACKAGES = [
    (MACHINERY, "pkg/apis/meta/v1/types.go", "k8s.io/apimachinery/pkg/apis/meta/v1", None, "META_V1"),
    (MACHINERY, "pkg/runtime/types.go", "k8s.io/apimachinery/pkg/runtime", None, "RUNTIME"),
    (API, "core/v1/types.go", "k8s.io/api/core/v1", "/v1", "CORE_V1"),
    (API, "apps/v1/types.go", "k8s.io/api/apps/v1", "apps", "APPS_V1"),
    (API, "batch/v1/types.go", "k8s.io/api/batch/v1", "batch", "BATCH_V1"),
    (API, "networking/v1/types.go", "k8s.io/api/networking/v1", "networking.k8s.io", "NETWORKING_V1"),
    (API, "policy/v1/types.go", "k8s.io/api/policy/v1", "policy", "POLICY_V1"),
    (API, "rbac/v1/types.go", "k8s.io/api/rbac/v1", "rbac.authorization.k8s.io", "RBAC_V1"),
    (API, "storage/v1/types.go", "k8s.io/api/storage/v1", "storage.k8s.io", "STORAGE_V1"),
    (API, "discovery/v1/types.go", "k8s.io/api/discovery/v1", "discovery.k8s.io", "DISCOVERY_V1"),
    (API, "events/v1/types.go", "k8s.io/api/events/v1", "events.k8s.io", "EVENTS_V1"),
    (API, "coordination/v1/types.go", "k8s.io/api/coordination/v1", "coordination.k8s.io", "COORDINATION_V1"),
    (API, "autoscaling/v1/types.go", "k8s.io/api/autoscaling/v1", "autoscaling", "AUTOSCALING_V1"),
    (API, "autoscaling/v2/types.go", "k8s.io/api/autoscaling/v2", "autoscaling", "AUTOSCALING_V2"),
    (API, "scheduling/v1/types.go", "k8s.io/api/scheduling/v1", "scheduling.k8s.io", "SCHEDULING_V1"),
    (API, "node/v1/types.go", "k8s.io/api/node/v1", "node.k8s.io", "NODE_V1"),
    (API, "certificates/v1/types.go", "k8s.io/api/certificates/v1", "certificates.k8s.io", "CERTIFICATES_V1"),
    (API, "admissionregistration/v1/types.go", "k8s.io/api/admissionregistration/v1",
     "admissionregistration.k8s.io", "ADMISSIONREGISTRATION_V1"),
    (APIEXT, "pkg/apis/apiextensions/v1/types.go", "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
     "apiextensions.k8s.io", "APIEXTENSIONS_V1"),
    (APIEXT, "pkg/apis/apiextensions/v1/types_jsonschema.go",
     "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "apiextensions.k8s.io", "APIEXTENSIONS_V1"),
]

# Types from packages not read here whose JSON form is a scalar (custom marshalling).
EXTERNAL_SCALARS = {
    "k8s.io/apimachinery/pkg/api/resource.Quantity",
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString",
    "k8s.io/apimachinery/pkg/types.UID",
    "k8s.io/apimachinery/pkg/types.NodeName",
    "k8s.io/apimachinery/pkg/apis/meta/v1.Time",
    "k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime",
    "k8s.io/apimachinery/pkg/apis/meta/v1.Duration",
    "time.Duration",
}
BUILTINS = {"string", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16",
            "uint32", "uint64", "float32", "float64", "byte", "rune", "interface{}", "any"}


def git_show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"{TAG}:{path}"], check=True,
                          capture_output=True, text=True).stdout


structs = {}   # (import path, name) -> dict
named = {}     # (import path, name) -> (type expr, imports)
markers_of_type = {}
kinds = []     # (group, kind, key)

FIELD_RE = re.compile(r'^\s*(?:(\w+)\s+)?([\w\.\*\[\]\{\}]+(?:\[[\w\.]+\][\w\.\*\[\]]+)?)\s*`([^`]*)`')


def parse_tag(tag, key):
    m = re.search(key + r':"([^"]*)"', tag)
    return m.group(1) if m else None


def parse_file(repo, path, import_path, group):
    text = git_show(repo, path)
    imports = {}
    for m in re.finditer(r'^\s*(\w+)?\s*"([\w\./\-]+)"\s*$', text, re.M):
        alias, ipath = m.group(1), m.group(2)
        if alias is None:
            alias = ipath.rsplit("/", 1)[-1]
        imports[alias] = ipath
    lines = text.split("\n")
    comments = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("//"):
            comments.append(s)
            i += 1
            continue
        m = re.match(r'^type (\w+) struct\s*\{\s*\}\s*$', line)
        if m:
            structs[(import_path, m.group(1))] = dict(name=m.group(1), fields=[], imports=imports,
                                                      markers=list(comments), pkg=import_path)
            comments = []
            i += 1
            continue
        m = re.match(r'^type (\w+) struct \{\s*$', line)
        if m:
            name = m.group(1)
            type_markers = list(comments)
            comments = []
            fields = []
            i += 1
            fcomments = []
            while i < len(lines) and not lines[i].startswith("}"):
                fl = lines[i].strip()
                if fl.startswith("/*"):
                    while i < len(lines) and "*/" not in lines[i]:
                        i += 1
                    i += 1
                    continue
                if fl.startswith("//"):
                    fcomments.append(fl)
                elif fl == "":
                    fcomments = []
                else:
                    fm = FIELD_RE.match(lines[i])
                    if fm:
                        fields.append((fm.group(1), fm.group(2), fm.group(3), fcomments))
                    elif not fl.startswith("}"):
                        print(f"warning: unparsed field in {name}: {fl}", file=sys.stderr)
                    fcomments = []
                i += 1
            structs[(import_path, name)] = dict(name=name, fields=fields, imports=imports,
                                                markers=type_markers, pkg=import_path)
            has_typemeta = any(f[0] is None and f[1].endswith("TypeMeta") for f in fields)
            has_meta = any(f[1].endswith("ObjectMeta") for f in fields)
            if group is not None and has_typemeta and has_meta and not name.endswith("List"):
                kinds.append((group, name, (import_path, name)))
            continue
        m = re.match(r'^type (\w+) =?\s*([\w\.\*\[\]]+)\s*$', line)
        if m and m.group(2) != "struct":
            named[(import_path, m.group(1))] = (m.group(2), imports)
            markers_of_type[(import_path, m.group(1))] = list(comments)
        comments = []
        i += 1


for repo, path, ipath, group, _ in PACKAGES:
    parse_file(repo, path, ipath, group)

PKG_KEY = {p[2]: p[4] for p in PACKAGES}


def resolve_ref(expr, pkg, imports):
    """Resolves a Go type name to (import path, name)."""
    if "." in expr:
        alias, name = expr.split(".", 1)
        return imports.get(alias, alias), name
    return pkg, expr


def rust_name(key):
    pkg, name = key
    snake = re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', name)
    snake = re.sub(r'(?<=[A-Z])([A-Z][a-z])', r'_\1', snake)
    return PKG_KEY[pkg] + "_" + snake.upper()


needed = []
needed_set = set()


def ty(expr, pkg, imports):
    """Translates a Go type expression into a Rust `Ty` expression."""
    while expr.startswith("*"):
        expr = expr[1:]
    if expr == "[]byte":
        return "Ty::Scalar"
    if expr.startswith("[]"):
        return f"Ty::List(&{ty(expr[2:], pkg, imports)})"
    if expr.startswith("map["):
        depth = 0
        for j, c in enumerate(expr):
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
                if depth == 0:
                    break
        return f"Ty::Map(&{ty(expr[j + 1:], pkg, imports)})"
    if expr in BUILTINS:
        return "Ty::Scalar"
    key = resolve_ref(expr, pkg, imports)
    if f"{key[0]}.{key[1]}" in EXTERNAL_SCALARS:
        return "Ty::Scalar"
    if key in structs:
        if key not in needed_set:
            needed_set.add(key)
            needed.append(key)
        return f"Ty::Struct(&{rust_name(key)})"
    if key in named:
        under, imps = named[key]
        return ty(under, key[0], imps)
    print(f"warning: unknown type {expr} in {pkg}, treated as scalar", file=sys.stderr)
    return "Ty::Scalar"


def marker(comments, name):
    vals = []
    for c in comments:
        m = re.match(r'^//\s*\+' + name + r'=(\S+)', c)
        if m:
            vals.append(m.group(1))
    return vals


def flatten_fields(key):
    """The JSON fields of a struct, with embedded structs without a JSON name flattened."""
    st = structs[key]
    out = []
    for fname, fty, tag, comments in st["fields"]:
        json_tag = parse_tag(tag, "json")
        json_name = json_tag.split(",")[0] if json_tag is not None else None
        if json_name == "-":
            continue
        if fname is None and not json_name:
            inner = resolve_ref(fty.lstrip("*"), st["pkg"], st["imports"])
            if inner in structs:
                out.extend(flatten_fields(inner))
                continue
            # TypeMeta and other embedded types from packages not read here.
            if inner[1] == "TypeMeta":
                out.append(("kind", "string", "", [], st["pkg"], st["imports"]))
                out.append(("apiVersion", "string", "", [], st["pkg"], st["imports"]))
                continue
            print(f"warning: unresolved embedded {fty} in {st['name']}", file=sys.stderr)
            continue
        if not json_name:
            json_name = fname
        out.append((json_name, fty, tag, comments, st["pkg"], st["imports"]))
    return out


def emit_struct(key):
    st = structs[key]
    atomic = "atomic" in marker(st["markers"], "structType")
    rows = []
    for json_name, fty, tag, comments, pkg, imports in flatten_fields(key):
        strategy = parse_tag(tag, "patchStrategy") or ""
        merge_key = parse_tag(tag, "patchMergeKey") or ""
        list_type = (marker(comments, "listType") or [""])[0]
        list_keys = marker(comments, "listMapKey")
        map_type = (marker(comments, "mapType") or [""])[0]
        struct_type = (marker(comments, "structType") or [""])[0]
        default = next((d[1:-1] for d in marker(comments, "default") if d.startswith('"') and d.endswith('"')), "")
        base = fty.lstrip("*")
        tkey = resolve_ref(base, pkg, imports)
        if tkey in markers_of_type:
            list_type = list_type or (marker(markers_of_type[tkey], "listType") or [""])[0]
            map_type = map_type or (marker(markers_of_type[tkey], "mapType") or [""])[0]
        if tkey in structs and not struct_type:
            struct_type = (marker(structs[tkey]["markers"], "structType") or [""])[0]
        keys = ", ".join(f'"{k}"' for k in list_keys)
        rows.append(
            f'        Field {{ json: "{json_name}", ty: {ty(fty, pkg, imports)}, strategy: "{strategy}", '
            f'merge_key: "{merge_key}", list_type: "{list_type}", list_keys: &[{keys}], '
            f'map_type: "{map_type}", struct_type: "{struct_type}", default: "{default}" }},')
    body = "\n".join(rows)
    return (f"pub(super) static {rust_name(key)}: Struct = Struct {{\n    name: \"{st['name']}\",\n"
            f"    atomic: {'true' if atomic else 'false'},\n    fields: &[\n{body}\n    ],\n}};\n")


kind_rows = []
for group, kind, key in kinds:
    ty(kind, key[0], {})
    api_version = key[0].rsplit("/", 1)[-1] if group == "/v1" else f"{group}/{key[0].rsplit('/', 1)[-1]}"
    if group == "/v1":
        api_version = "v1"
    kind_rows.append(f'    ("{api_version}", "{kind}", &{rust_name(key)}),')

out = []
k = 0
while k < len(needed):
    out.append(emit_struct(needed[k]))
    k += 1

print("// Generated by schema_gen.py from the Go types of k8s.io/api, k8s.io/apimachinery and")
print(f"// k8s.io/apiextensions-apiserver at {TAG}. Do not edit by hand.")
print("use super::schema::{Field, Struct, Ty};\n")
print("/// Every built-in kind by `apiVersion` and `kind`, for the strategic merge patch and server-side apply.")
print("pub(super) static KINDS: &[(&str, &str, &Struct)] = &[")
print("\n".join(kind_rows))
print("];\n")
print("\n".join(out))
