//! The OpenAPI document at `/openapi.json`: it describes exactly the routes Rocket mounts (both
//! directions), it validates with a standard validator (`openapi-spec-validator`, OpenAPI 3.1),
//! and real answers of the issuer (statuses, media types, JSON bodies) are the ones it documents.
//!
//! The validator is installed by this test into a Python venv under `target/interop/` (as the
//! interop test installs PyJWT), once; an installation failure fails the test, never skips it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rocket::http::{ContentType, Header, Method, Status};
use serde_json::{Value, json};
use stamp::routes::openapi::{FRAGMENTS, merged};

use crate::helpers::{PASSWORD, TestApp, urlencode};
use crate::interop::{locked_interop_dir, python_venv};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The served document, checked for its headers.
async fn served_document(app: &TestApp) -> Value {
    let response = app.client.get("/openapi.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert!(
        response
            .headers()
            .get_one("Cache-Control")
            .is_some_and(|c| c.starts_with("public, max-age=")),
        "cacheable"
    );
    assert!(response.headers().get_one("ETag").is_some(), "has an ETag");
    response.into_json().await.expect("JSON document")
}

/// Every (METHOD, /path/{param}) the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// A Rocket route path in OpenAPI's spelling: `<id>` and `<_id>` become `{id}`, `<rest..>`
/// becomes `{rest}`; the query part is not part of `uri.path()`.
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                Some(name) => format!(
                    "{{{}}}",
                    name.trim_start_matches('_').trim_end_matches("..")
                ),
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (METHOD, path) the app mounts; rank and format variants of one path collapse into one
/// operation, as in the document.
fn mounted_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    app.client
        .rocket()
        .routes()
        .map(|route| {
            (
                route.method.as_str().to_uppercase(),
                openapi_path(route.uri.path()),
            )
        })
        .collect()
}

#[test]
fn rocket_paths_are_translated_to_openapi_templates() {
    assert_eq!(openapi_path("/admin/users/<id>"), "/admin/users/{id}");
    assert_eq!(openapi_path("/admin/clients/<_id>"), "/admin/clients/{id}");
    assert_eq!(
        openapi_path("/admin/users/<id>/consents/<client_id>"),
        "/admin/users/{id}/consents/{client_id}"
    );
    assert_eq!(openapi_path("/files/<path..>"), "/files/{path}");
    assert_eq!(openapi_path("/health/live"), "/health/live");
}

#[rocket::async_test]
async fn the_document_describes_every_mounted_route_and_nothing_else() {
    let app = TestApp::spawn().await;
    let doc = served_document(&app).await;

    let documented = documented_operations(&doc);
    let mounted = mounted_operations(&app);
    // A route with trailing segments (`/console/<rest..>`) serves fixed files: the document
    // names each of them (`/console`, `/console/app.js`, …), and it must name at least one.
    let prefixes: Vec<(String, String)> = app
        .client
        .rocket()
        .routes()
        .filter(|route| route.uri.path().ends_with("..>"))
        .map(|route| {
            let path = route.uri.path().to_string();
            let prefix = path[..path.rfind('/').unwrap_or(0)].to_string();
            (route.method.as_str().to_uppercase(), prefix)
        })
        .collect();
    let under = |(method, path): &(String, String), (m, prefix): &(String, String)| {
        method == m && (path == prefix || path.starts_with(&format!("{prefix}/")))
    };
    let undocumented: Vec<_> = mounted
        .difference(&documented)
        .filter(|op| {
            !prefixes.iter().any(|p| {
                openapi_path(&format!("{}/<rest..>", p.1)) == op.1
                    && documented.iter().any(|d| under(d, p))
            })
        })
        .collect();
    let not_mounted: Vec<_> = documented
        .difference(&mounted)
        .filter(|op| !prefixes.iter().any(|p| under(op, p)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "mounted routes missing from src/openapi/*.json: {undocumented:?}"
    );
    assert!(
        not_mounted.is_empty(),
        "documented operations that no route serves: {not_mounted:?}"
    );
    assert!(mounted.len() >= 44, "only {} operations", mounted.len());

    // Every operation says who may call it and what it answers.
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        let what = format!("{method} {path}");
        assert!(op["operationId"].is_string(), "{what}: operationId");
        assert!(
            op["security"].is_array(),
            "{what}: security (`[]` if public)"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{what}: responses");
        let needs_bearer = path.starts_with("/admin/") || path.starts_with("/account/");
        if needs_bearer {
            assert_eq!(op["security"], json!([{ "bearer": [] }]), "{what}");
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{what}: documents {status}");
            }
        }
    }

    // The security schemes of the brief, and the issuer as the server.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client"]["scheme"], "basic");
    assert_eq!(schemes["session"]["in"], "cookie");
    let issuer = app.app().config.issuer.trim_end_matches('/').to_string();
    assert_eq!(
        doc["servers"],
        json!([{ "url": issuer, "description": "this issuer" }])
    );
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
}

#[rocket::async_test]
async fn the_document_is_cached_by_its_etag() {
    let app = TestApp::spawn().await;
    let (etag, body) = app.assert_conditional_get("/openapi.json").await;
    let again = app.client.get("/openapi.json").dispatch().await;
    assert_eq!(again.headers().get_one("ETag"), Some(etag.as_str()));
    assert_eq!(again.into_string().await.expect("body"), body, "built once");
}

#[rocket::async_test]
async fn the_document_validates_with_openapi_spec_validator() {
    let app = TestApp::spawn().await;
    let doc = served_document(&app).await;
    let dir = tempfile::tempdir().unwrap();

    let out = check(&write_json(dir.path(), "openapi.json", &doc), None);
    assert!(
        out.0,
        "openapi-spec-validator refuses the document:\n{}",
        out.1
    );
    assert!(out.1.contains("valid OpenAPI 3.1.0"), "{}", out.1);

    // The validator really looks: the same document with a dangling reference is refused.
    let mut broken = doc.clone();
    broken["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("Error");
    let out = check(&write_json(dir.path(), "broken.json", &broken), None);
    assert!(!out.0, "a dangling $ref passed validation:\n{}", out.1);
}

/// One request of [`documented_answers_are_the_real_answers`]: what is sent, the operation it
/// belongs to (the documented path template) and the status the issuer must answer.
struct Probe {
    method: Method,
    template: &'static str,
    uri: String,
    content_type: Option<ContentType>,
    headers: Vec<Header<'static>>,
    body: Option<String>,
    expect: Status,
}

fn probe(method: Method, template: &'static str, expect: u16) -> Probe {
    Probe {
        method,
        template,
        uri: template.to_string(),
        content_type: None,
        headers: Vec::new(),
        body: None,
        expect: Status::new(expect),
    }
}

impl Probe {
    fn uri(mut self, uri: impl Into<String>) -> Probe {
        self.uri = uri.into();
        self
    }
    fn bearer(mut self, token: &str) -> Probe {
        self.headers
            .push(Header::new("Authorization", format!("Bearer {token}")));
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Probe {
        self.headers.push(Header::new(name, value));
        self
    }
    fn json(mut self, body: &str) -> Probe {
        self.content_type = Some(ContentType::JSON);
        self.body = Some(body.to_string());
        self
    }
    fn form(mut self, body: &str) -> Probe {
        self.content_type = Some(ContentType::Form);
        self.body = Some(body.to_string());
        self
    }
    fn text(mut self, body: &str) -> Probe {
        self.content_type = Some(ContentType::Plain);
        self.body = Some(body.to_string());
        self
    }
}

/// The fragments whose every operation must have a probe below. A fragment added later joins
/// this list together with probes for its operations.
const PROBED_FRAGMENTS: [&str; 12] = [
    "base.json",
    "well_known.json",
    "oauth.json",
    "login.json",
    "health.json",
    "account.json",
    "admin.json",
    "admin_users.json",
    "admin_clients.json",
    "oidc.json",
    "apis.json",
    "console.json",
];

/// Real answers, successes and refusals, held against the document: each status is documented
/// for its operation, the headers it marks required are sent (`WWW-Authenticate` on a 401,
/// `Cache-Control: no-store` on tokens and admin answers, `ETag`, `Location`, …), each body has a
/// documented media type, and each JSON body is valid against the documented schema (errors
/// against `Error`, tokens against `TokenResponse`, …).
#[rocket::async_test]
async fn documented_answers_are_the_real_answers() {
    use Method::{Delete, Get, Patch, Post};

    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let alice = app.add_user("alice", PASSWORD, &[]).await;
    let user = app.login("alice", PASSWORD).await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let kid = app.active_kid(app.app().config.keys.signing_alg);
    let password_grant = format!(
        "grant_type=password&username=alice&password={}",
        urlencode(PASSWORD)
    );
    let login = json!({ "username": "alice", "password": PASSWORD }).to_string();
    let client_auth = format!("client_id=gateway&client_secret={}", urlencode(&gateway));
    let alice_path = |rest: &str| format!("/admin/users/{}{rest}", alice.id);
    let orders = "resource=https%3A%2F%2Forders.example.com";
    let inspect = |token: &str, status| probe(Post, "/admin/tokens/inspect", status).bearer(token);
    let orders_api = |method, status| {
        probe(method, "/admin/apis/{id}", status)
            .uri("/admin/apis/orders")
            .bearer(&admin)
    };
    let console_authorize = format!(
        "/authorize?response_type=code&client_id=stamp-console&redirect_uri={}\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGjSstw-cM&code_challenge_method=S256\
         &resource=https%3A%2F%2Funknown.example.com",
        urlencode(&format!(
            "{}/console/",
            app.app().config.issuer.trim_end_matches('/')
        ))
    );

    let probes = vec![
        // Discovery and this document.
        probe(Get, "/openapi.json", 200),
        probe(Get, "/openapi.json", 304).header("If-None-Match", "*"),
        probe(Get, "/.well-known/jwks.json", 200),
        probe(Get, "/.well-known/openid-configuration", 200),
        probe(Get, "/.well-known/oauth-authorization-server", 200),
        // OAuth endpoints.
        probe(Post, "/oauth/token", 200).form(&password_grant),
        probe(Post, "/oauth/token", 400).form("grant_type=bogus"),
        probe(Post, "/oauth/token", 400).form("username=alice"),
        probe(Post, "/oauth/token", 401).form("grant_type=client_credentials"),
        probe(Post, "/oauth/token", 415).json(r#"{"grant_type":"password"}"#),
        probe(Post, "/oauth/revoke", 415).json("{}"),
        probe(Post, "/oauth/introspect", 415).text("token=x"),
        probe(Post, "/oauth/introspect", 200).form(&format!("token={user}&{client_auth}")),
        probe(Post, "/oauth/introspect", 200).form(&format!("token=junk&{client_auth}")),
        probe(Post, "/oauth/introspect", 401).form("token=junk"),
        probe(Post, "/oauth/introspect", 400).form(&client_auth),
        probe(Post, "/oauth/revoke", 200).form(&format!("token=junk&{client_auth}")),
        probe(Post, "/oauth/revoke", 401).form("token=junk&client_id=gateway&client_secret=no"),
        // RFC 8707 resource indicators: an unknown API is `invalid_target`.
        probe(Post, "/oauth/token", 400).form(&format!(
            "{password_grant}&resource=https%3A%2F%2Funknown.example.com"
        )),
        // First-party login, sign-up, logout.
        probe(Post, "/login", 200).json(&login),
        probe(Post, "/login", 400).json("{"),
        probe(Post, "/login", 400).json(r#"{"username":"alice","password":"wrong horse"}"#),
        probe(Post, "/login", 422).json(r#"{"user":"alice"}"#),
        probe(Post, "/login", 415).text(&login),
        probe(Post, "/signup", 404).json(&login),
        probe(Post, "/logout", 400),
        probe(Post, "/logout", 204).form("refresh_token=junk"),
        probe(Post, "/logout", 204).json(r#"{"refresh_token":"junk"}"#),
        probe(Post, "/logout", 422).json(r#"{"token":"junk"}"#),
        // Operations.
        probe(Get, "/health/live", 200),
        probe(Get, "/health/ready", 200),
        probe(Get, "/health/ready", 200).uri("/health/ready?scope=keys"),
        probe(Get, "/health/ready", 200).uri("/health/ready?scope=other"),
        probe(Get, "/metrics", 200),
        // The user's own account.
        probe(Get, "/account/consents", 200).bearer(&user),
        probe(Get, "/account/consents", 401),
        probe(Delete, "/account/consents/{client_id}", 404)
            .uri("/account/consents/nobody")
            .bearer(&user),
        probe(Post, "/account/password", 401).json("{}"),
        probe(Post, "/account/password", 422)
            .bearer(&user)
            .json(r#"{"current_password":"x"}"#),
        probe(Post, "/account/password", 415)
            .bearer(&user)
            .text("x"),
        // OpenID Connect.
        probe(Get, "/userinfo", 401),
        probe(Get, "/userinfo", 403).bearer(&user),
        probe(Post, "/userinfo", 401).bearer("not-a-token"),
        probe(Get, "/authorize", 400),
        probe(Get, "/authorize", 400).uri("/authorize?response_type=code&client_id=nobody"),
        probe(Post, "/authorize", 400).form("client_id=nobody"),
        probe(Post, "/authorize/login", 400).form("request_id=x&csrf=y"),
        probe(Post, "/authorize/consent", 400).form("decision=maybe"),
        probe(Get, "/end-session", 200),
        probe(Post, "/end-session", 200).form("state=x"),
        probe(Get, "/assets/stamp.css", 200),
        probe(Get, "/authorize", 303).uri(console_authorize),
        // The admin console and its token inspector.
        probe(Get, "/console", 308),
        probe(Get, "/console/", 200),
        probe(Get, "/console/", 304).header("If-None-Match", "*"),
        probe(Get, "/console/app.js", 200),
        probe(Get, "/console/app.js", 304).header("If-None-Match", "*"),
        probe(Get, "/console/app.css", 200),
        probe(Get, "/console/app.css", 304).header("If-None-Match", "*"),
        inspect(&admin, 200).json(&json!({ "token": user }).to_string()),
        inspect(&admin, 400).json(r#"{"token":"not-a-jwt"}"#),
        inspect(&admin, 400).json("{"),
        inspect(&admin, 422).json(r#"{"jwt":"x"}"#),
        inspect(&admin, 415).text("x"),
        probe(Post, "/admin/tokens/inspect", 401).json(r#"{"token":"x"}"#),
        inspect(&user, 403).json(r#"{"token":"x"}"#),
        // Keys and audit.
        probe(Get, "/admin/keys", 200).bearer(&admin),
        probe(Get, "/admin/keys", 401),
        probe(Get, "/admin/keys", 401).bearer("not-a-token"),
        probe(Get, "/admin/keys", 403).bearer(&user),
        probe(Post, "/admin/keys/rotate", 400)
            .bearer(&admin)
            .header("Idempotency-Key", "has spaces"),
        probe(Post, "/admin/keys/rotate", 422)
            .bearer(&admin)
            .json(r#"{"alg":"HS256"}"#),
        probe(Post, "/admin/keys/rotate", 400)
            .bearer(&admin)
            .json("{"),
        probe(Post, "/admin/keys/{kid}/revoke", 404)
            .uri("/admin/keys/no-such-kid/revoke")
            .bearer(&admin),
        probe(Get, "/admin/audit", 200).bearer(&admin),
        probe(Get, "/admin/audit", 200)
            .uri("/admin/audit?limit=1")
            .bearer(&admin),
        probe(Get, "/admin/audit", 400)
            .uri("/admin/audit?limit=0")
            .bearer(&admin),
        // APIs (resource servers).
        probe(Post, "/admin/apis", 201).bearer(&admin).json(
            r#"{"id":"orders","identifier":"https://orders.example.com","scopes":["orders:read"]}"#,
        ),
        probe(Post, "/admin/apis", 409)
            .bearer(&admin)
            .json(r#"{"id":"orders","identifier":"https://other.example.com"}"#),
        probe(Post, "/admin/apis", 409)
            .bearer(&admin)
            .json(r#"{"id":"other","identifier":"https://orders.example.com"}"#),
        probe(Post, "/admin/apis", 400)
            .bearer(&admin)
            .json(r#"{"id":"bad","identifier":"not a uri"}"#),
        probe(Post, "/admin/apis", 400).bearer(&admin).json("{"),
        probe(Post, "/admin/apis", 422)
            .bearer(&admin)
            .json(r#"{"id":"x","identifier":"https://x.example","audience":"x"}"#),
        probe(Post, "/admin/apis", 415).bearer(&admin).text("x"),
        probe(Post, "/admin/apis", 401).json("{}"),
        probe(Get, "/admin/apis", 200).bearer(&admin),
        probe(Get, "/admin/apis", 401),
        probe(Get, "/admin/apis", 403).bearer(&user),
        orders_api(Get, 200),
        probe(Get, "/admin/apis/{id}", 404)
            .uri("/admin/apis/nobody")
            .bearer(&admin),
        orders_api(Patch, 200).json(r#"{"name":"Orders","scopes":["orders:read","orders:write"]}"#),
        orders_api(Patch, 400).json("{}"),
        orders_api(Patch, 400).json(r#"{"scopes":["Not A Scope"]}"#),
        orders_api(Patch, 422).json(r#"{"identifier":"https://x.example"}"#),
        orders_api(Patch, 415).text("x"),
        probe(Patch, "/admin/apis/{id}", 404)
            .uri("/admin/apis/nobody")
            .bearer(&admin)
            .json(r#"{"name":"x"}"#),
        probe(Patch, "/admin/apis/{id}", 403)
            .uri("/admin/apis/orders")
            .bearer(&user)
            .json(r#"{"name":"x"}"#),
        // A token for the registered API, then the API is gone.
        probe(Post, "/oauth/token", 200).form(&format!("{password_grant}&{orders}")),
        orders_api(Delete, 204),
        orders_api(Delete, 404),
        probe(Post, "/oauth/token", 400).form(&format!("{password_grant}&{orders}")),
        // Users.
        probe(Get, "/admin/users", 200).bearer(&admin),
        probe(Get, "/admin/users", 400)
            .uri("/admin/users?limit=1000")
            .bearer(&admin),
        probe(Post, "/admin/users", 201)
            .bearer(&admin)
            .json(&json!({ "username": "bob", "password": PASSWORD }).to_string()),
        probe(Post, "/admin/users", 409)
            .bearer(&admin)
            .json(&json!({ "username": "bob", "password": PASSWORD }).to_string()),
        probe(Post, "/admin/users", 400)
            .bearer(&admin)
            .json(r#"{"username":"carol","password":"short"}"#),
        probe(Post, "/admin/users", 415).bearer(&admin).text("x"),
        probe(Get, "/admin/users/{id}", 200)
            .uri(alice_path(""))
            .bearer(&admin),
        probe(Get, "/admin/users/{id}", 404)
            .uri("/admin/users/nobody")
            .bearer(&admin),
        probe(Patch, "/admin/users/{id}", 200)
            .uri(alice_path(""))
            .bearer(&admin)
            .json(r#"{"email":"alice@example.com"}"#),
        probe(Patch, "/admin/users/{id}", 422)
            .uri(alice_path(""))
            .bearer(&admin)
            .json(r#"{"name":"x"}"#),
        probe(Patch, "/admin/users/{id}", 415)
            .uri(alice_path(""))
            .bearer(&admin)
            .text("x"),
        probe(Get, "/admin/users/{id}/consents", 200)
            .uri(alice_path("/consents"))
            .bearer(&admin),
        probe(Delete, "/admin/users/{id}/consents/{client_id}", 404)
            .uri(alice_path("/consents/nobody"))
            .bearer(&admin),
        probe(Post, "/admin/users/{id}/password", 422)
            .uri(alice_path("/password"))
            .bearer(&admin)
            .json("{}"),
        probe(Post, "/admin/users/{id}/password", 415)
            .uri(alice_path("/password"))
            .bearer(&admin)
            .text("x"),
        probe(Post, "/admin/users/{id}/revoke-tokens", 200)
            .uri(alice_path("/revoke-tokens"))
            .bearer(&admin),
        probe(Delete, "/admin/users/{id}", 404)
            .uri("/admin/users/nobody")
            .bearer(&admin),
        // Clients.
        probe(Get, "/admin/clients", 200).bearer(&admin),
        probe(Post, "/admin/clients", 201)
            .bearer(&admin)
            .json(r#"{"id":"svc","scopes":["read"]}"#),
        probe(Post, "/admin/clients", 409)
            .bearer(&admin)
            .json(r#"{"id":"svc"}"#),
        probe(Post, "/admin/clients", 422)
            .bearer(&admin)
            .json(r#"{"name":"svc"}"#),
        probe(Post, "/admin/clients", 415).bearer(&admin).text("x"),
        probe(Get, "/admin/clients/{id}", 200)
            .uri("/admin/clients/svc")
            .bearer(&admin),
        probe(Get, "/admin/clients/{id}", 404)
            .uri("/admin/clients/nobody")
            .bearer(&admin),
        probe(Patch, "/admin/clients/{id}", 400)
            .uri("/admin/clients/svc")
            .bearer(&admin)
            .json("{}"),
        probe(Patch, "/admin/clients/{id}", 200)
            .uri("/admin/clients/svc")
            .bearer(&admin)
            .json(r#"{"enabled":false}"#),
        probe(Post, "/admin/clients/{id}/secret", 200)
            .uri("/admin/clients/svc/secret")
            .bearer(&admin),
        probe(Post, "/admin/clients/{id}/secret", 400)
            .uri("/admin/clients/stamp/secret")
            .bearer(&admin),
        probe(Delete, "/admin/clients/{id}", 204)
            .uri("/admin/clients/svc")
            .bearer(&admin),
        probe(Delete, "/admin/clients/{id}", 404)
            .uri("/admin/clients/svc")
            .bearer(&admin),
        // Last: these end alice's sessions and change the key set; revoking the key that
        // signed the admin token ends the admin's session too.
        probe(Post, "/admin/users/{id}/password", 204)
            .uri(alice_path("/password"))
            .bearer(&admin)
            .json(&json!({ "password": "a brand new passphrase 42" }).to_string()),
        probe(Delete, "/admin/users/{id}", 204)
            .uri(alice_path(""))
            .bearer(&admin),
        probe(Post, "/admin/keys/rotate", 200)
            .bearer(&admin)
            .json(r#"{"force":true}"#),
        probe(Post, "/admin/keys/{kid}/revoke", 200)
            .uri(format!("/admin/keys/{kid}/revoke"))
            .bearer(&admin),
        probe(Get, "/admin/keys", 401).bearer(&admin),
    ];

    let mut observations = Vec::new();
    let mut exercised = BTreeSet::new();
    for p in probes {
        let mut request = app.client.req(p.method, p.uri.clone());
        if let Some(content_type) = p.content_type {
            request = request.header(content_type);
        }
        for header in p.headers {
            request = request.header(header);
        }
        if let Some(body) = p.body {
            request = request.body(body);
        }
        let response = request.dispatch().await;
        let status = response.status();
        let content_type = response.content_type().map(|c| c.to_string());
        let headers: serde_json::Map<String, Value> = response
            .headers()
            .iter()
            .map(|h| (h.name().as_str().to_lowercase(), h.value().into()))
            .collect();
        let body = response.into_string().await.unwrap_or_default();
        assert_eq!(
            status, p.expect,
            "{} {} answered {status}: {body}",
            p.method, p.uri
        );
        exercised.insert((p.method.as_str().to_uppercase(), p.template.to_string()));
        observations.push(json!({
            "method": p.method.as_str(),
            "path": p.template,
            "status": status.code,
            "headers": headers,
            "content_type": content_type,
            "body": body,
        }));
    }

    // The RFC 8707 probes were refused for their `resource`, not for something else.
    let answered = |path: &str, status: u16, needle: &str| {
        observations
            .iter()
            .any(|o| o["path"] == path && o["status"] == status && o.to_string().contains(needle))
    };
    assert!(answered("/oauth/token", 400, "invalid_target"));
    assert!(answered("/authorize", 303, "error=invalid_target"));

    // Every operation of the probed fragments was called at least once.
    let probed: Vec<_> = FRAGMENTS
        .iter()
        .filter(|(name, _)| PROBED_FRAGMENTS.contains(name))
        .copied()
        .collect();
    assert_eq!(probed.len(), PROBED_FRAGMENTS.len(), "PROBED_FRAGMENTS");
    let operations = documented_operations(&Value::Object(merged(&probed).unwrap()));
    let missed: Vec<_> = operations.difference(&exercised).cloned().collect();
    assert!(missed.is_empty(), "operations without a probe: {missed:?}");

    let doc = served_document(&app).await;

    let dir = tempfile::tempdir().unwrap();
    let out = check(
        &write_json(dir.path(), "openapi.json", &doc),
        Some(&write_json(
            dir.path(),
            "answers.json",
            &json!(observations),
        )),
    );
    assert!(out.0, "answers differ from the document:\n{}", out.1);
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

/// Runs `tests/openapi/check.py` on a document (and answers): whether it passed, and its output.
fn check(document: &Path, answers: Option<&Path>) -> (bool, String) {
    let python = match validator_python() {
        Ok(python) => python,
        Err(e) => panic!("cannot install openapi-spec-validator: {e}"),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(document)
        .args(answers)
        .output()
        .expect("run check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The python of `target/interop/openapi-venv`, with `openapi-spec-validator` (which brings
/// `openapi-schema-validator` and `jsonschema`) installed on first use.
fn validator_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let (root, _lock) = locked_interop_dir()?;
            python_venv(
                &root.join("openapi-venv"),
                "openapi_spec_validator, openapi_schema_validator, referencing",
                &["openapi-spec-validator>=0.7.1,<0.8"],
            )
        })
        .clone()
}
