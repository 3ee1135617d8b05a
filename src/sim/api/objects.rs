//! Handlers of object requests: get, list, create, update, patch, delete and the `scale` and
//! `finalize` subresources.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::Body;
use super::protobuf::{self, ProtobufError};
use super::table::{IncludeObject, table};
use super::{ApiServer, Req, status};
use crate::sim::patch::{PatchError, PatchKind, PatchRequest, apply_patch};
use crate::sim::resources::ResourceDef;
use crate::sim::store::pruning::{self, FieldValidation};
use crate::sim::store::{
    ApiError, DeleteOptions, Deleted, FieldError, FieldSelector, LabelSelector, ListOptions,
    OPTIMISTIC_LOCK_MSG, Part, Propagation, Reason, WriteOptions,
};

/// One request against one resource.
pub(super) struct Ctx<'a> {
    pub server: &'a ApiServer,
    pub req: &'a Req,
    pub res: &'a ResourceDef,
    pub ns: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Renders a body for an error message as apimachinery's `summarizeData` does.
fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    match data.first() {
        None => "<empty>".to_string(),
        Some(b'{') => {
            let text = String::from_utf8_lossy(&data[..data.len().min(MAX)]).into_owned();
            if data.len() > MAX {
                format!("{text} ...")
            } else {
                text
            }
        }
        Some(_) => {
            let hex: String = data[..data.len().min(MAX)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if data.len() > MAX {
                format!("{hex} ...")
            } else {
                hex
            }
        }
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Maps a patch engine error to the Status the API server sends; the patch engine words each
/// message as k8s.io/apiserver/pkg/endpoints/handlers/patch.go and the field manager do.
fn patch_error(err: PatchError) -> ApiError {
    match err {
        PatchError::BadRequest(m) => ApiError::bad_request(m),
        PatchError::UnsupportedMediaType(m) => ApiError::new(Reason::UnsupportedMediaType, m),
        PatchError::RequestEntityTooLarge(m) => ApiError::new(Reason::RequestEntityTooLarge, m),
        PatchError::Invalid(m) => ApiError::new(Reason::Invalid, m),
        PatchError::NotFound(m) => ApiError::new(Reason::NotFound, m),
        PatchError::Conflict { message, causes } => ApiError::apply_conflict(
            message,
            causes.into_iter().map(|c| (c.field, c.message)).collect(),
        ),
        PatchError::Internal(m) => ApiError::unknown(m),
    }
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            if let Value::Object(m) = cur {
                m.insert((*seg).to_string(), value);
            }
            return;
        }
        cur = crate::sim::store::defaults::child(cur, seg);
    }
}

/// `runtime.NewStrictDecodingError` over strict decoding errors, each already worded (the
/// unknown fields as k8s.io/apiextensions-apiserver/pkg/apiserver/customresource_handler.go
/// `schemaCoercingDecoder.Decode` and sigs.k8s.io/json `strictError.Error` write them).
fn strict_decoding_error(errors: &[String]) -> String {
    // k8s.io/apimachinery/pkg/runtime/error.go (strictDecodingError.Error).
    format!("strict decoding error: {}", errors.join(", "))
}

/// Adds one `Warning` header per text, as k8s.io/apiserver's warning recorder writes them
/// (k8s.io/apimachinery/pkg/util/net/http.go `NewWarningHeader`: code 299, agent `-`, the
/// text quoted as Go's strconv.Quote).
fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let value = format!("299 - {}", crate::sim::store::error::go_quote(w));
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

/// The error of server-side apply when the applied configuration has fields its schema does
/// not declare: k8s.io/apimachinery/pkg/util/managedfields/internal/structuredmerge.go
/// (`Apply`: "failed to create typed patch object (%v): %v" with `objectGVKNN`), the errors of
/// sigs.k8s.io/structured-merge-diff/v4/typed (`ValidationError`: "%s: %v" with the path
/// written `.a.b[0]`, several as "errors:" and one indented line each). It is a plain Go error,
/// so the API server answers 500 with no reason (responsewriters `ErrorToAPIStatus`).
fn typed_patch_error(applied: &Value, api_version: &str, unknown: &[String]) -> ApiError {
    let lines: Vec<String> = unknown
        .iter()
        .map(|p| format!(".{p}: field not declared in schema"))
        .collect();
    let detail = if let [one] = lines.as_slice() {
        one.clone()
    } else {
        let mut all = vec!["errors:".to_string()];
        all.extend(lines.iter().map(|l| format!("  {l}")));
        all.join("\n")
    };
    let meta = &applied["metadata"];
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    ApiError::unknown(format!(
        "failed to create typed patch object ({}/{}; {group}/{version}, Kind={}): {detail}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
        applied["kind"].as_str().unwrap_or_default(),
    ))
}

/// The undeclared fields structured-merge-diff's typed conversion reports, given all of them
/// sorted: sigs.k8s.io/structured-merge-diff/v4 typed/validate.go (`visitMapItems`) stops
/// iterating a map at its first undeclared field, so each map yields at most one, and fields
/// after it in that map are not descended into. Go iterates maps in random order; this takes
/// them in sorted order, one of the orders a real server may show.
fn first_undeclared_per_map(sorted: &[String]) -> Vec<String> {
    // The parent path and key of a field path (`a.b[0].c` is `a.b[0]` and `c`).
    fn split(path: &str) -> (&str, &str) {
        path.rsplit_once('.').unwrap_or(("", path))
    }
    let mut cut: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for path in sorted {
        let blocked = cut.iter().any(|(parent, key)| {
            let rest = if parent.is_empty() {
                Some(path.as_str())
            } else {
                path.strip_prefix(parent.as_str())
                    .and_then(|r| r.strip_prefix('.'))
            };
            rest.is_some_and(|r| {
                let next = r.split(['.', '[']).next().unwrap_or_default();
                next > key.as_str()
            })
        });
        if blocked {
            continue;
        }
        let (parent, key) = split(path);
        cut.push((parent.to_string(), key.to_string()));
        out.push(path.clone());
    }
    out
}

fn unknown_warnings(unknown: &[String]) -> Vec<String> {
    // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (addStrictDecodingWarnings: each
    // error's text).
    unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect()
}

/// The strict errors of a JSON, merge or strategic patch, in the order the patch handler
/// collects them (k8s.io/apiserver/pkg/endpoints/handlers/patch.go): those of decoding the
/// patch itself with sigs.k8s.io/json `UnmarshalStrict` (into a map for merge and strategic
/// patches, so only duplicates; into `[]jsonPatchOp` for JSON patches, each error prefixed
/// "json patch " in `applyJSPatch`), then the patched object's unknown fields.
fn patch_strict_errors(kind: PatchKind, body: &[u8], unknown: &[String]) -> Vec<String> {
    let scan = crate::sim::store::duplicates::scan_json(body);
    let mut errors: Vec<String> = if kind == PatchKind::Json {
        // `jsonPatchOp` declares op, path, from and value.
        let mut unknown_ops: Vec<(String, usize)> = scan
            .first_seen
            .iter()
            .filter(|(p, _)| {
                p.strip_prefix('[')
                    .and_then(|r| r.split_once("]."))
                    .is_some_and(|(i, k)| {
                        i.parse::<usize>().is_ok()
                            && !k.contains(['.', '['])
                            && !matches!(k, "op" | "path" | "from" | "value")
                    })
            })
            .map(|(p, at)| (p.clone(), *at))
            .collect();
        unknown_ops.sort_by_key(|(_, at)| *at);
        let paths: Vec<String> = unknown_ops.iter().map(|(p, _)| p.clone()).collect();
        let mut all: Vec<(String, usize)> = unknown_ops
            .into_iter()
            .map(|(p, at)| {
                (
                    format!("unknown field {}", crate::sim::store::error::go_quote(&p)),
                    at,
                )
            })
            .chain(scan.duplicate_errors(&paths))
            .collect();
        all.sort_by_key(|(_, at)| *at);
        all.into_iter()
            .map(|(e, _)| format!("json patch {e}"))
            .collect()
    } else {
        scan.duplicate_errors(&[])
            .into_iter()
            .map(|(e, _)| e)
            .collect()
    };
    errors.extend(unknown_warnings(unknown));
    errors
}

/// What a written object's fields are checked against.
enum Schema {
    /// A custom resource's structural schema: unknown fields are pruned, their paths sorted.
    Custom(Value),
    /// A built-in kind's published schema and the schemas it refers to: unknown fields are
    /// those strict JSON decoding reports, in decoding order.
    Builtin(&'static Value, &'static serde_json::Map<String, Value>),
}

impl Schema {
    /// Rewrites a built-in kind's resource.Quantity fields as the Go type writes them back.
    fn canonicalize(&self, obj: &mut Value) {
        if let Self::Builtin(schema, defs) = self {
            pruning::canonicalize_quantities(obj, schema, defs);
        }
    }

    fn prune(&self, obj: &mut Value) -> Vec<String> {
        match self {
            Self::Custom(schema) => pruning::prune(obj, schema),
            Self::Builtin(schema, defs) => pruning::unknown_builtin_fields(obj, schema, defs),
        }
    }
}

/// A JSON value as Go's `fmt` prints its decoded `interface{}` with `%+v`: maps as
/// `map[k:v ...]` with sorted keys, slices as `[a b]`, nil as `<nil>`.
fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn get_path<'v>(obj: &'v Value, path: &str) -> &'v Value {
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        cur = &cur[seg];
    }
    cur
}

impl Ctx<'_> {
    fn store(&self) -> &crate::sim::store::Store {
        &self.server.store
    }

    fn name(&self) -> &str {
        self.name.unwrap_or_default()
    }

    fn wants_table(&self) -> bool {
        self.req.accept.split(',').any(|p| p.contains("as=Table"))
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            dry_run: self.req.query.get("dryRun") == Some("All"),
        }
    }

    /// What a written object is checked against: a custom resource's structural schema (its
    /// CRD's `openAPIV3Schema` for the served version, unless the CRD keeps unknown fields with
    /// `preserveUnknownFields`), or a built-in kind's published OpenAPI v3 schema.
    fn schema(&self) -> Option<Schema> {
        if !self.res.custom {
            let (schema, defs) =
                super::openapi::builtin_schema(&self.res.group, &self.res.version, &self.res.kind)?;
            return Some(Schema::Builtin(schema, defs));
        }
        let crd_res =
            self.store()
                .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
        let crd = self
            .store()
            .get(
                &crd_res,
                None,
                &format!("{}.{}", self.res.plural, self.res.group),
            )
            .ok()?;
        if crd["spec"]["preserveUnknownFields"] == Value::Bool(true) {
            return None;
        }
        pruning::crd_schema(&crd, &self.res.version)
            .cloned()
            .map(Schema::Custom)
    }

    /// The manager a create, update or non-apply patch is recorded under: `fieldManager`, else
    /// the user agent's first segment (k8s.io/apiserver/pkg/endpoints/handlers/rest.go
    /// `prefixFromUserAgent`).
    fn update_manager(&self) -> Option<String> {
        if let Some(m) = self.req.query.non_empty("fieldManager") {
            return Some(m.to_string());
        }
        let prefix = self.req.user_agent.split('/').next().unwrap_or_default();
        let prefix: String = prefix.chars().take(128).collect();
        (!prefix.is_empty()).then_some(prefix)
    }

    /// Records the write in `new`'s `managedFields` as the API server's field manager does for
    /// an `Update` operation.
    fn record_update(&self, old: Option<&Value>, new: &mut Value, part: Part, now: &str) {
        let Some(manager) = self.update_manager() else {
            return;
        };
        let api_version = self.res.api_version();
        let subresource = (part == Part::Status).then_some("status");
        crate::sim::patch::record_update_subresource(
            &manager,
            &api_version,
            old,
            new,
            now,
            subresource,
        );
    }

    fn field_validation(&self) -> FieldValidation {
        FieldValidation::parse(self.req.query.get("fieldValidation"))
    }

    /// Prunes a decoded create or update body to `schema` and applies `fieldValidation`: the
    /// warnings to send, or the create and update handlers' refusal (`transformDecodeError` of
    /// k8s.io/apiserver/pkg/endpoints/handlers/rest.go around the strict decoding error).
    fn coerce_body(
        &self,
        body: &mut Value,
        schema: Option<&Schema>,
    ) -> Result<Vec<String>, ApiError> {
        let media = media_type(&self.req.content_type);
        // Protobuf carries no field the Go type lacks, nor a key twice.
        if media == protobuf::MEDIA_TYPE {
            return Ok(Vec::new());
        }
        let unknown = schema.map(|s| s.prune(body)).unwrap_or_default();
        let errors = self.strict_errors(&media, &unknown, schema);
        if errors.is_empty() {
            return Ok(Vec::new());
        }
        match self.field_validation() {
            FieldValidation::Ignore => Ok(Vec::new()),
            FieldValidation::Warn => Ok(errors),
            FieldValidation::Strict => {
                let kind = body["kind"].as_str().unwrap_or(&self.res.kind);
                let version = body["apiVersion"]
                    .as_str()
                    .and_then(|v| v.rsplit('/').next())
                    .unwrap_or(&self.res.version);
                Err(ApiError::bad_request(format!(
                    "{kind} in version {} cannot be handled as a {}: {}",
                    crate::sim::store::error::go_quote(version),
                    self.res.kind,
                    strict_decoding_error(&errors)
                )))
            }
        }
    }

    /// The errors strict decoding of a create or update body collects, in their order:
    /// k8s.io/apimachinery/pkg/runtime/serializer/json/json.go (`Serializer.unmarshal`: for
    /// YAML the error of `yaml.YAMLToJSONStrict` first, then sigs.k8s.io/json `UnmarshalStrict`'s
    /// duplicate and unknown fields in the order the body holds them); a custom resource's
    /// unknown fields come from pruning, after the decoder's own errors
    /// (k8s.io/apiextensions-apiserver/pkg/apiserver/customresource_handler.go
    /// `schemaCoercingDecoder.Decode`).
    fn strict_errors(
        &self,
        media: &str,
        unknown: &[String],
        schema: Option<&Schema>,
    ) -> Vec<String> {
        let unknown_errs = unknown_warnings(unknown);
        if matches!(
            media,
            "application/yaml" | "application/x-yaml" | "text/yaml"
        ) {
            let text = String::from_utf8_lossy(&self.req.body);
            let mut errors: Vec<String> = crate::sim::store::duplicates::yaml_error(&text)
                .into_iter()
                .collect();
            errors.extend(unknown_errs);
            return errors;
        }
        let scan = crate::sim::store::duplicates::scan_json(&self.req.body);
        let dups = scan.duplicate_errors(unknown);
        if dups.is_empty() {
            return unknown_errs;
        }
        if matches!(schema, Some(Schema::Builtin(..))) {
            let mut all: Vec<(String, usize)> = unknown
                .iter()
                .zip(unknown_errs)
                .map(|(p, e)| (e, scan.first_seen.get(p).copied().unwrap_or(usize::MAX)))
                .chain(dups)
                .collect();
            all.sort_by_key(|(_, at)| *at);
            return all.into_iter().map(|(e, _)| e).collect();
        }
        dups.into_iter()
            .map(|(e, _)| e)
            .chain(unknown_errs)
            .collect()
    }

    fn respond<T>(
        result: Result<T, ApiError>,
        ok: impl FnOnce(T) -> Response<Body>,
    ) -> Response<Body> {
        match result {
            Ok(v) => ok(v),
            Err(e) => status::error(&e),
        }
    }

    /// Decodes a JSON or YAML request body as an object.
    fn decode_body(&self) -> Result<Value, ApiError> {
        let media = media_type(&self.req.content_type);
        let body = &self.req.body;
        let unrecognized = |detail: String| {
            // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (transformDecodeError)
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {detail} ({})",
                self.res.kind,
                summarize(body)
            ))
        };
        let value = match media.as_str() {
            "" | "application/json" | "*/*" => {
                serde_json::from_slice::<Value>(body).map_err(|e| unrecognized(e.to_string()))?
            }
            "application/yaml" | "application/x-yaml" | "text/yaml" => {
                let text = std::str::from_utf8(body).map_err(|e| unrecognized(e.to_string()))?;
                crate::yaml::value(text).map_err(|e| unrecognized(e.to_string()))?
            }
            // Custom resources have no protobuf schema.
            protobuf::MEDIA_TYPE if !self.res.custom => {
                return protobuf::decode(body, &self.res.group, &self.res.version, &self.res.kind)
                    .map_err(|e| self.protobuf_error(e));
            }
            _ => {
                // k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go (NewUnsupportedMediaTypeError):
                // the media types the serializer decodes (CBOR is off by default in 1.32).
                let accepted = if self.res.custom {
                    "application/json, application/yaml"
                } else {
                    "application/json, application/yaml, application/vnd.kubernetes.protobuf"
                };
                return Err(ApiError::new(
                    Reason::UnsupportedMediaType,
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: {accepted}"
                    ),
                ));
            }
        };
        if !value.is_object() {
            return Err(unrecognized("cannot unmarshal into an object".to_string()));
        }
        for field in ["apiVersion", "kind"] {
            match value.get(field) {
                None | Some(Value::String(_) | Value::Null) => {}
                Some(other) => {
                    // k8s.io/apimachinery/pkg/runtime/serializer/json/meta.go
                    // (SimpleMetaFactory.Interpret) decodes both into strings of an anonymous
                    // struct: encoding/json's UnmarshalTypeError.
                    return Err(unrecognized(format!(
                        "json: cannot unmarshal {} into Go struct field .{field} of type string",
                        crate::sim::store::error::go_json_kind(other)
                    )));
                }
            }
        }
        Ok(value)
    }

    /// A protobuf decoding failure as the create and update handlers report it.
    fn protobuf_error(&self, err: ProtobufError) -> ApiError {
        // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (transformDecodeError)
        match err {
            ProtobufError::Unrecognized(detail) => ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): {detail} ({})",
                self.res.kind,
                summarize(&self.req.body)
            )),
            ProtobufError::Typed {
                kind,
                version,
                detail,
            } => ApiError::bad_request(format!(
                "{kind} in version {} cannot be handled as a {}: {detail}",
                crate::sim::store::error::go_quote(&version),
                self.res.kind
            )),
        }
    }

    fn list_options(&self) -> Result<ListOptions, ApiError> {
        let q = &self.req.query;
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
        let mut fields = FieldSelector::parse(
            q.get("fieldSelector").unwrap_or_default(),
            &self.res.selectable_fields,
        )?;
        if let Some(name) = self.name {
            // A watch on an item path watches that one object.
            fields = FieldSelector::parse(&format!("metadata.name={name}"), &[])?;
        }
        if let Some(rv) = q.non_empty("resourceVersion").filter(|rv| *rv != "0") {
            super::query::resource_version(rv)?;
        }
        // A negative limit lists everything, as a zero one does.
        let limit = q.int64("limit")?.unwrap_or(0);
        Ok(ListOptions {
            labels,
            fields,
            limit: usize::try_from(limit).unwrap_or(0),
            continue_token: q.non_empty("continue").map(ToString::to_string),
        })
    }

    fn include(&self) -> IncludeObject {
        IncludeObject::parse(self.req.query.get("includeObject"))
    }

    pub fn list(&self) -> Response<Body> {
        let result = self
            .list_options()
            .and_then(|opts| self.store().list(self.res, self.ns, &opts));
        Self::respond(result, |list| {
            let rv = list.resource_version.to_string();
            if self.wants_table() {
                let now = self.store().clock().now();
                return status::ok(&table(
                    self.res,
                    &list.items,
                    self.include(),
                    now,
                    &rv,
                    list.continue_token.as_deref(),
                ));
            }
            let mut metadata = json!({"resourceVersion": rv});
            if let Some(c) = &list.continue_token {
                metadata["continue"] = json!(c);
            }
            if let Some(n) = list.remaining {
                metadata["remainingItemCount"] = json!(n);
            }
            status::ok(&json!({
                "kind": format!("{}List", self.res.kind),
                "apiVersion": self.res.api_version(),
                "metadata": metadata,
                "items": list.items,
            }))
        })
    }

    pub fn get(&self) -> Response<Body> {
        Self::respond(self.store().get(self.res, self.ns, self.name()), |obj| {
            if self.wants_table() {
                let now = self.store().clock().now();
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return status::ok(&table(self.res, &[obj], self.include(), now, &rv, None));
            }
            status::ok(&obj)
        })
    }

    pub fn create(&self) -> Response<Body> {
        let schema = self.schema();
        let mut warnings = Vec::new();
        let result = self.decode_body().and_then(|mut body| {
            warnings = self.coerce_body(&mut body, schema.as_ref())?;
            if let Some(schema) = &schema {
                schema.canonicalize(&mut body);
            }
            let now = self.store().now();
            self.record_update(None, &mut body, Part::Main, &now);
            self.store()
                .create(self.res, self.ns, body, &self.write_options())
        });
        Self::respond(result, |obj| {
            with_warnings(status::json_response(StatusCode::CREATED, &obj), &warnings)
        })
    }

    /// Answers the create of an access review: it is evaluated for the requesting user and
    /// never stored.
    pub fn review(&self, kind: crate::sim::rbac::review::ReviewKind) -> Response<Body> {
        // kubectl's typed clients post reviews as protobuf.
        let decoded = if media_type(&self.req.content_type) == super::proto::PROTOBUF {
            super::proto::access_review(&self.req.body).map_err(|e| {
                // k8s.io/apiserver/pkg/endpoints/handlers/rest.go (transformDecodeError).
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type {}): {e}",
                    self.res.kind
                ))
            })
        } else {
            self.decode_body()
        };
        let result = decoded.and_then(|body| {
            crate::sim::rbac::review::create(
                &super::authz::StorePolicy(self.store()),
                self.res,
                kind,
                &self.req.user,
                self.ns,
                &body,
            )
        });
        Self::respond(result, |obj| {
            status::json_response(StatusCode::CREATED, &obj)
        })
    }

    pub fn update(&self, part: Part) -> Response<Body> {
        let schema = self.schema();
        let mut warnings = Vec::new();
        let result = self.decode_body().and_then(|mut body| {
            warnings = self.coerce_body(&mut body, schema.as_ref())?;
            if let Some(schema) = &schema {
                schema.canonicalize(&mut body);
            }
            let current = self.store().get(self.res, self.ns, self.name()).ok();
            let now = self.store().now();
            self.record_update(current.as_ref(), &mut body, part, &now);
            let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
            if !body_name.is_empty() && body_name != self.name() {
                // k8s.io/apiserver/pkg/endpoints/handlers/update.go
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({})",
                    self.name()
                )));
            }
            self.store().update(
                self.res,
                self.ns,
                self.name(),
                body,
                part,
                &self.write_options(),
            )
        });
        Self::respond(result, |obj| with_warnings(status::ok(&obj), &warnings))
    }

    fn patch_kind(&self) -> Result<PatchKind, ApiError> {
        let media = media_type(&self.req.content_type);
        let kind = match media.as_str() {
            "application/json-patch+json" => PatchKind::Json,
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" if !self.res.custom => PatchKind::Strategic,
            "application/apply-patch+yaml" => PatchKind::Apply,
            _ => {
                // k8s.io/apiserver/pkg/endpoints/handlers/negotiation (NewUnsupportedMediaTypeError)
                let mut accepted = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ];
                if !self.res.custom {
                    accepted.insert(2, "application/strategic-merge-patch+json");
                }
                return Err(ApiError::new(
                    Reason::UnsupportedMediaType,
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: {}",
                        accepted.join(", ")
                    ),
                ));
            }
        };
        Ok(kind)
    }

    pub fn patch(&self, part: Part) -> Response<Body> {
        let kind = match self.patch_kind() {
            Ok(k) => k,
            Err(e) => return status::error(&e),
        };
        let now = self.store().now();
        let api_version = self.res.api_version();
        let q = &self.req.query;
        let schema = self.schema();
        let directive = self.field_validation();
        let mut warnings = Vec::new();
        let result = self.store().modify(
            self.res,
            self.ns,
            self.name(),
            part,
            &self.write_options(),
            |current| {
                if current.is_none() && (kind != PatchKind::Apply || part == Part::Status) {
                    return Err(ApiError::not_found(self.res, self.name()));
                }
                let request = PatchRequest {
                    kind,
                    api_version: &api_version,
                    object_kind: &self.res.kind,
                    current,
                    body: &self.req.body,
                    field_manager: q.non_empty("fieldManager"),
                    force: q.flag("force"),
                    now: &now,
                };
                let mut patched = apply_patch(&request).map_err(patch_error)?;
                if current.is_none() && patched["metadata"]["name"].is_null() {
                    // A `metadata` that is not an object is left for validation to reject.
                    if let Value::Object(meta) =
                        crate::sim::store::defaults::child(&mut patched, "metadata")
                    {
                        meta.insert("name".to_string(), json!(self.name()));
                    }
                }
                if let Some(schema) = &schema {
                    if kind == PatchKind::Apply {
                        // Server-side apply converts the applied configuration to the
                        // schema's type before anything else, whatever `fieldValidation` says.
                        let mut applied = std::str::from_utf8(&self.req.body)
                            .ok()
                            .and_then(|text| crate::yaml::value(text).ok())
                            .unwrap_or(Value::Null);
                        let mut unknown = schema.prune(&mut applied);
                        unknown.sort();
                        let unknown = first_undeclared_per_map(&unknown);
                        if !unknown.is_empty() {
                            return Err(typed_patch_error(&applied, &api_version, &unknown));
                        }
                    }
                    let mut unknown = schema.prune(&mut patched);
                    if kind == PatchKind::Strategic {
                        // The strategic patcher converts the patched map to the Go type, whose
                        // unknown fields come sorted (k8s.io/apimachinery/pkg/runtime/converter.go
                        // `FromUnstructuredWithValidation`).
                        unknown.sort();
                    }
                    let errors = if kind == PatchKind::Apply {
                        Vec::new()
                    } else {
                        patch_strict_errors(kind, &self.req.body, &unknown)
                    };
                    match directive {
                        _ if errors.is_empty() => {}
                        FieldValidation::Ignore => {}
                        FieldValidation::Warn => warnings = errors,
                        // k8s.io/apiserver/pkg/endpoints/handlers/patch.go (applyPatchToObject:
                        // errors.NewInvalid with no kind or name, the patch map as Go's `%+v`
                        // prints it as the invalid value).
                        FieldValidation::Strict
                            if kind == PatchKind::Strategic && !self.res.custom =>
                        {
                            let patch = serde_json::from_slice::<Value>(&self.req.body)
                                .unwrap_or(Value::Null);
                            return Err(ApiError::invalid_unnamed(vec![FieldError::invalid_raw(
                                "patch",
                                crate::sim::store::error::go_quote(&go_format(&patch)),
                                strict_decoding_error(&errors),
                            )]));
                        }
                        // k8s.io/apiserver/pkg/endpoints/handlers/patch.go
                        // (applyPatchToCurrentObject of the JSON and strategic patchers:
                        // errors.NewBadRequest of the strict decoding error).
                        FieldValidation::Strict => {
                            return Err(ApiError::bad_request(strict_decoding_error(&errors)));
                        }
                    }
                }
                if kind == PatchKind::Apply && directive != FieldValidation::Ignore {
                    // k8s.io/apiserver/pkg/endpoints/handlers/patch.go
                    // (applyPatcher.applyPatchToCurrentObject: after the apply succeeded,
                    // sigs.k8s.io/yaml `UnmarshalStrict` of the body, whose error says
                    // "error converting YAML to JSON: %w" around the YAML decoder's).
                    let text = String::from_utf8_lossy(&self.req.body);
                    if let Some(e) = crate::sim::store::duplicates::yaml_error(&text) {
                        let e = format!("error converting YAML to JSON: {e}");
                        if directive == FieldValidation::Strict {
                            return Err(ApiError::bad_request(format!(
                                "error strict decoding YAML: {e}"
                            )));
                        }
                        warnings = vec![e];
                    }
                }
                if let Some(schema) = &schema {
                    schema.canonicalize(&mut patched);
                }
                if kind != PatchKind::Apply {
                    self.record_update(current, &mut patched, part, &now);
                }
                Ok(patched)
            },
        );
        Self::respond(result, |(obj, created)| {
            with_warnings(
                status::json_response(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    &obj,
                ),
                &warnings,
            )
        })
    }

    fn delete_options(&self) -> Result<DeleteOptions, ApiError> {
        let body: Value = if self.req.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&self.req.body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type DeleteOptions): couldn't get version/kind; json parse error: {e} ({})",
                    summarize(&self.req.body)
                ))
            })?
        };
        let q = &self.req.query;
        let policy = body["propagationPolicy"]
            .as_str()
            .map(ToString::to_string)
            .or_else(|| q.non_empty("propagationPolicy").map(ToString::to_string));
        let orphan = body["orphanDependents"]
            .as_bool()
            .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
        let propagation = match policy.as_deref() {
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                // k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go
                // (ValidateDeleteOptions), whose list ends with "nil".
                let err = FieldError::not_supported(
                    "propagationPolicy",
                    other,
                    &["Foreground", "Background", "Orphan", "nil"],
                );
                return Err(ApiError::new(
                    Reason::Invalid,
                    format!("DeleteOptions.meta.k8s.io \"\" is invalid: {err}"),
                ));
            }
            None => match orphan {
                Some(true) => Some(Propagation::Orphan),
                Some(false) => Some(Propagation::Background),
                None => None,
            },
        };
        let dry_run = body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"))
            || q.get("dryRun") == Some("All");
        Ok(DeleteOptions {
            propagation,
            uid: body["preconditions"]["uid"]
                .as_str()
                .map(ToString::to_string),
            resource_version: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(ToString::to_string),
            grace_period: match body["gracePeriodSeconds"].as_i64() {
                Some(g) => Some(g),
                None => q.int64("gracePeriodSeconds")?,
            },
            dry_run,
        })
    }

    pub fn delete(&self) -> Response<Body> {
        let result = self
            .delete_options()
            .and_then(|opts| self.store().delete(self.res, self.ns, self.name(), &opts));
        Self::respond(result, |out| match out {
            Deleted::Pending(obj) => status::ok(&obj),
            Deleted::Gone(obj) => {
                // Pods, services and custom resources return the deleted object; other
                // resources a Success status (registry stores with ReturnDeletedObject).
                let returns_object = self.res.custom
                    || (self.res.group.is_empty()
                        && matches!(self.res.kind.as_str(), "Pod" | "Service"));
                if returns_object {
                    status::ok(&obj)
                } else {
                    status::ok(&status::success(
                        self.name(),
                        &self.res.group,
                        &self.res.plural,
                        obj["metadata"]["uid"].as_str().unwrap_or_default(),
                    ))
                }
            }
        })
    }

    pub fn delete_collection(&self) -> Response<Body> {
        let result = self.list_options().and_then(|list| {
            let opts = self.delete_options()?;
            self.store()
                .delete_collection(self.res, self.ns, &list, &opts)
        });
        Self::respond(result, |items| {
            status::ok(&json!({
                "kind": format!("{}List", self.res.kind),
                "apiVersion": self.res.api_version(),
                "metadata": {"resourceVersion": self.store().resource_version().to_string()},
                "items": items,
            }))
        })
    }

    fn scale_of(&self, obj: &Value) -> Value {
        let Some(paths) = &self.res.scale else {
            return Value::Null;
        };
        let selector = match &paths.label_selector {
            Some(p) => get_path(obj, p).as_str().unwrap_or_default().to_string(),
            None => LabelSelector::from_object(&obj["spec"]["selector"])
                .map(|s| s.to_query())
                .unwrap_or_default(),
        };
        let m = &obj["metadata"];
        let mut metadata = json!({"name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]});
        if !m["namespace"].is_null() {
            metadata["namespace"] = m["namespace"].clone();
        }
        let mut out = json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": metadata,
            "spec": {"replicas": get_path(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
            "status": {"replicas": get_path(obj, &paths.status_replicas).as_i64().unwrap_or(0)},
        });
        if !selector.is_empty() {
            out["status"]["selector"] = json!(selector);
        }
        out
    }

    pub fn get_scale(&self) -> Response<Body> {
        Self::respond(self.store().get(self.res, self.ns, self.name()), |obj| {
            status::ok(&self.scale_of(&obj))
        })
    }

    /// Applies a desired Scale to the object.
    fn write_scale(
        &self,
        desired: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Response<Body> {
        let Some(paths) = self.res.scale.clone() else {
            return status::error(&ApiError::unknown_path());
        };
        let scale_res = ResourceDef {
            group: "autoscaling".to_string(),
            kind: "Scale".to_string(),
            ..self.res.clone()
        };
        let result = self.store().modify(
            self.res,
            self.ns,
            self.name(),
            Part::Main,
            &self.write_options(),
            |current| {
                let Some(current) = current else {
                    return Err(ApiError::not_found(self.res, self.name()));
                };
                let scale = desired(&self.scale_of(current))?;
                let rv = scale["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() {
                    return Err(ApiError::conflict(
                        self.res,
                        self.name(),
                        OPTIMISTIC_LOCK_MSG,
                    ));
                }
                let replicas = &scale["spec"]["replicas"];
                let n = replicas.as_i64().unwrap_or(0);
                if n < 0 {
                    return Err(ApiError::invalid(
                        &scale_res,
                        self.name(),
                        vec![FieldError::invalid_raw(
                            "spec.replicas",
                            n.to_string(),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut next = current.clone();
                set_path(&mut next, &paths.spec_replicas, json!(n));
                Ok(next)
            },
        );
        Self::respond(result, |(obj, _)| status::ok(&self.scale_of(&obj)))
    }

    pub fn update_scale(&self) -> Response<Body> {
        match self.decode_body() {
            Ok(body) => self.write_scale(|_| Ok(body)),
            Err(e) => status::error(&e),
        }
    }

    pub fn patch_scale(&self) -> Response<Body> {
        let kind = match self.patch_kind() {
            Ok(k) => k,
            Err(e) => return status::error(&e),
        };
        let now = self.store().now();
        let q = &self.req.query;
        self.write_scale(|current| {
            let request = PatchRequest {
                kind,
                api_version: "autoscaling/v1",
                object_kind: "Scale",
                current: Some(current),
                body: &self.req.body,
                field_manager: q.non_empty("fieldManager"),
                force: q.flag("force"),
                now: &now,
            };
            apply_patch(&request).map_err(patch_error)
        })
    }

    /// `PUT namespaces/<name>/finalize`: replaces `spec.finalizers`.
    pub fn finalize(&self) -> Response<Body> {
        let body = match self.decode_body() {
            Ok(b) => b,
            Err(e) => return status::error(&e),
        };
        let result = self.store().modify(
            self.res,
            None,
            self.name(),
            Part::Main,
            &self.write_options(),
            |current| {
                let Some(current) = current else {
                    return Err(ApiError::not_found(self.res, self.name()));
                };
                let mut next = current.clone();
                next["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
                Ok(next)
            },
        );
        Self::respond(result, |(obj, _)| status::ok(&obj))
    }
}
