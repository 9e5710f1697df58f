//! `GET /openapi.json`: the OpenAPI 3.1 document of every mounted route, assembled once at start
//! from the JSON fragments in `src/openapi/` (one per route family; see docs/openapi.md).
//!
//! The fragments are written by hand next to the routes they describe; the integration test
//! `tests/api/openapi.rs` holds the merged document against the routes Rocket actually mounts, in
//! both directions, and validates it with a standard OpenAPI validator, so it cannot drift.

use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::{State, get, routes};
use serde_json::{Map, Value};

use crate::App;

use super::well_known::{Cached, IfNoneMatch};

/// The fragments, merged in this order (`base.json` first: `openapi`, `info`, the security
/// schemes and the shared components). Adding a route family's fragment is one line here.
pub const FRAGMENTS: &[(&str, &str)] = &[
    ("base.json", include_str!("../openapi/base.json")),
    (
        "well_known.json",
        include_str!("../openapi/well_known.json"),
    ),
    ("oauth.json", include_str!("../openapi/oauth.json")),
    ("login.json", include_str!("../openapi/login.json")),
    ("health.json", include_str!("../openapi/health.json")),
    ("account.json", include_str!("../openapi/account.json")),
    ("admin.json", include_str!("../openapi/admin.json")),
    (
        "admin_users.json",
        include_str!("../openapi/admin_users.json"),
    ),
    (
        "admin_clients.json",
        include_str!("../openapi/admin_clients.json"),
    ),
    ("oidc.json", include_str!("../openapi/oidc.json")),
    ("apis.json", include_str!("../openapi/apis.json")),
    ("console.json", include_str!("../openapi/console.json")),
];

/// The methods that name an operation in an OpenAPI path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Why the fragments do not make one document. A bug in the fragments, caught by the unit tests
/// below before it can stop a launch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The fragment is not a JSON object.
    #[error("OpenAPI fragment {fragment}: not a JSON object: {reason}")]
    Malformed {
        fragment: &'static str,
        reason: String,
    },
    /// Two fragments describe the same operation (path and method).
    #[error(
        "OpenAPI fragment {fragment}: operation {pointer} is already described by another fragment"
    )]
    DuplicateOperation {
        fragment: &'static str,
        pointer: String,
    },
    /// Two fragments give different values at the same place (e.g. two schemas of one name).
    #[error("OpenAPI fragment {fragment}: {pointer} differs from another fragment's")]
    Conflict {
        fragment: &'static str,
        pointer: String,
    },
}

/// The served document, serialised once.
pub struct OpenApiDocument {
    body: Arc<[u8]>,
    etag: String,
}

/// `GET /openapi.json`; the document is built here, once, from the configured issuer.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("openapi", |rocket| async {
        let Some(app) = rocket.state::<App>() else {
            return Err(rocket);
        };
        let body = match document(&app.config.issuer) {
            Ok(doc) => serde_json::to_vec(&doc).unwrap_or_default(),
            Err(e) => {
                rocket::error!("{e}");
                return Err(rocket);
            }
        };
        let served = OpenApiDocument {
            etag: crate::keys::strong_etag(&body),
            body: body.into(),
        };
        Ok(rocket.manage(served).mount("/", routes![openapi_json]))
    })
}

/// Cacheable like the discovery documents, with a strong `ETag` and `304` on a match.
#[get("/openapi.json")]
fn openapi_json(
    app: &State<App>,
    doc: &State<OpenApiDocument>,
    if_none_match: IfNoneMatch<'_>,
) -> Cached {
    let fresh = if_none_match.matches(&doc.etag);
    Cached {
        body: (!fresh).then(|| doc.body.clone()),
        etag: Some(doc.etag.clone()),
        cache_control: app.jwks_cache_control.clone(),
    }
}

/// The document as served by an issuer at `issuer`: the merged fragments, this build's version
/// in `info.version`, and `servers` naming the issuer (without a trailing slash, since every
/// path starts with one).
pub fn document(issuer: &str) -> Result<Value, FragmentError> {
    let mut doc = merged(FRAGMENTS)?;
    doc.insert(
        "servers".into(),
        serde_json::json!([{ "url": issuer.trim_end_matches('/'), "description": "this issuer" }]),
    );
    if let Some(Value::Object(info)) = doc.get_mut("info") {
        info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    }
    Ok(Value::Object(doc))
}

/// Deep-merges `fragments` in order: objects merge key by key; anything else must be equal in
/// every fragment that gives it, and an operation (a method under `paths./x`) may be described
/// by one fragment only.
pub fn merged(fragments: &[(&'static str, &str)]) -> Result<Map<String, Value>, FragmentError> {
    let mut doc = Map::new();
    for &(fragment, text) in fragments {
        let parsed: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| FragmentError::Malformed {
                fragment,
                reason: e.to_string(),
            })?;
        merge_into(&mut doc, parsed, &mut Vec::new(), fragment)?;
    }
    Ok(doc)
}

fn merge_into(
    target: &mut Map<String, Value>,
    source: Map<String, Value>,
    at: &mut Vec<String>,
    fragment: &'static str,
) -> Result<(), FragmentError> {
    for (key, value) in source {
        let Some(existing) = target.get_mut(&key) else {
            target.insert(key, value);
            continue;
        };
        at.push(key);
        let operation = at.len() == 3 && at[0] == "paths" && METHODS.contains(&at[2].as_str());
        if operation {
            return Err(FragmentError::DuplicateOperation {
                fragment,
                pointer: pointer(at),
            });
        }
        match (existing, value) {
            (Value::Object(existing), Value::Object(value)) => {
                merge_into(existing, value, at, fragment)?;
            }
            (existing, value) if *existing == value => {}
            _ => {
                return Err(FragmentError::Conflict {
                    fragment,
                    pointer: pointer(at),
                });
            }
        }
        at.pop();
    }
    Ok(())
}

/// A JSON pointer (RFC 6901) to `at`.
fn pointer(at: &[String]) -> String {
    at.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragments_merge_into_one_document() {
        let doc = document("https://id.example.com/").unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["servers"][0]["url"], "https://id.example.com");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["paths"]["/oauth/token"]["post"].is_object());
    }

    #[test]
    fn every_fragment_is_listed_once() {
        let listed: Vec<&str> = FRAGMENTS.iter().map(|(name, _)| *name).collect();
        let mut on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".json"))
                .collect();
        on_disk.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), listed.len(), "a fragment is listed twice");
        assert_eq!(sorted, on_disk, "src/openapi/*.json and FRAGMENTS differ");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document("http://127.0.0.1:8000").unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "only {} references found", refs.len());
        for reference in refs {
            let target = reference
                .strip_prefix('#')
                .and_then(|p| doc.pointer(p))
                .filter(|t| !t.is_null());
            assert!(target.is_some(), "{reference} does not resolve");
        }
    }

    fn collect_refs(value: &Value, refs: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }

    #[test]
    fn a_duplicate_operation_across_fragments_is_refused() {
        let a = r#"{"paths": {"/x": {"get": {"responses": {}}}}}"#;
        let same = r#"{"paths": {"/x": {"get": {"responses": {}}}}}"#;
        let other_method = r#"{"paths": {"/x": {"post": {"responses": {}}}}}"#;
        assert!(merged(&[("a.json", a), ("b.json", other_method)]).is_ok());
        let err = merged(&[("a.json", a), ("b.json", same)]).unwrap_err();
        assert!(
            matches!(&err, FragmentError::DuplicateOperation { fragment: "b.json", pointer }
                if pointer == "/paths/~1x/get"),
            "{err}"
        );
    }

    #[test]
    fn a_shared_schema_must_be_the_same_in_every_fragment() {
        let a = r#"{"components": {"schemas": {"S": {"type": "string"}}}}"#;
        let b = r#"{"components": {"schemas": {"S": {"type": "string"}, "T": {}}}}"#;
        let c = r#"{"components": {"schemas": {"S": {"type": "integer"}}}}"#;
        let doc = merged(&[("a.json", a), ("b.json", b)]).unwrap();
        assert_eq!(doc["components"]["schemas"].as_object().unwrap().len(), 2);
        let err = merged(&[("a.json", a), ("c.json", c)]).unwrap_err();
        assert!(
            matches!(&err, FragmentError::Conflict { fragment: "c.json", pointer }
                if pointer == "/components/schemas/S/type"),
            "{err}"
        );
        assert!(matches!(
            merged(&[("a.json", "[]")]),
            Err(FragmentError::Malformed { .. })
        ));
    }
}
