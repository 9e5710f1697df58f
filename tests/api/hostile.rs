//! Issue 14, point 3: the hostile-input suite. One table of attacks (forged tokens, body and
//! header abuse, method confusion, cookie abuse, client-authentication edge cases), each with the
//! status and OAuth error code it must get, then "nothing changed": the same row counts in every
//! table and the same manifest and JWKS bytes. The concurrency cases (parallel refreshes,
//! rotations, login bursts) follow as their own tests.

use std::collections::BTreeMap;

use rocket::http::{ContentType, Header, Method, Status};
use serde_json::{Value, json};
use stamp::keys::{Alg, PrivateKey};

use crate::helpers::{PASSWORD, TestApp, b64url, join_all, no_waits, urlencode};

/// One request of the table.
struct Request {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    cookies: Vec<(String, String)>,
    body: Option<(ContentType, Vec<u8>)>,
}

impl Request {
    fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            cookies: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    fn cookie(mut self, name: &str, value: impl Into<String>) -> Request {
        self.cookies.push((name.to_string(), value.into()));
        self
    }

    fn body(mut self, content_type: ContentType, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some((content_type, body.into()));
        self
    }
}

/// A case: its name, the request, the status it must get and, for errors, the OAuth `error`.
struct Case {
    name: String,
    request: Request,
    status: Status,
    error: Option<&'static str>,
}

/// The admin API with a bearer token: a forged one must get 401 `invalid_token`.
fn bearer(token: &str) -> Request {
    Request::new(Method::Get, "/admin/keys").header("Authorization", format!("Bearer {token}"))
}

fn form(path: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::new(Method::Post, path).body(ContentType::Form, body)
}

fn token_form(body: impl Into<Vec<u8>>) -> Request {
    form("/oauth/token", body)
}

fn json_post(path: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::new(Method::Post, path).body(ContentType::JSON, body)
}

fn basic_raw(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// `header.payload.signature` from JSON parts.
fn compact(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64url(&serde_json::to_vec(header).unwrap()),
        b64url(&serde_json::to_vec(claims).unwrap())
    )
}

/// An HMAC-signed token keyed with `secret`: the key-confusion attack when `secret` is public.
fn hmac_token(
    alg: jsonwebtoken::Algorithm,
    header: &Value,
    claims: &Value,
    secret: &[u8],
) -> String {
    let message = compact(header, claims, "");
    let message = message.trim_end_matches('.');
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
        alg,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// The SubjectPublicKeyInfo PEM of a P-256 JWK (`x`, `y`): what a naive HS256 verifier would
/// use as its "key" if it took the published key as an HMAC secret.
fn p256_public_pem(jwk: &Value) -> String {
    use base64::Engine;
    let coordinate = |name: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap())
            .unwrap()
    };
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 || x || y }
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    der.extend(coordinate("x"));
    der.extend(coordinate("y"));
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// An ES256 raw `r || s` signature re-encoded as ASN.1 DER (what some libraries emit).
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        value.extend(trimmed);
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let mut body = integer(&raw[..32]);
    body.extend(integer(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The decoded JSON of a token's first or second segment.
fn segment(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Row counts of every table of the SQLite database. Failed logins are recorded in the audit
/// log by design (`login.failure`), so the audit log counts every other entry.
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    use sqlx::Row;
    let url = format!("sqlite://{}", app.dir.path().join("stamp.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    let mut counts = BTreeMap::new();
    for table in tables {
        let only_changes = if table == "audit_log" {
            " WHERE action <> 'login.failure'"
        } else {
            ""
        };
        let sql = format!("SELECT COUNT(*) FROM \"{table}\"{only_changes}");
        let count: i64 = sqlx::query(&sql).fetch_one(&pool).await.unwrap().get(0);
        counts.insert(table, count);
    }
    pool.close().await;
    counts
}

/// What must not change: the rows, the manifest and the published JWKS.
async fn state(app: &TestApp) -> (BTreeMap<String, i64>, Vec<u8>, Value) {
    let manifest = std::fs::read(app.keys_dir().join("manifest.json")).unwrap();
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    (row_counts(app).await, manifest, jwks)
}

/// A token signed by the issuer's key whose signature is written in the standard base64
/// alphabet. The alphabets differ only in `+` and `/` (for `-` and `_`), and about one ES256
/// signature in fifteen has neither, which would make this the valid token itself: it signs
/// until the signature has one.
fn standard_base64(app: &TestApp, header: &Value, claims: &Value) -> String {
    let token = std::iter::repeat_with(|| app.sign_raw(header, claims))
        .take(1_000)
        .find(|t| {
            t.rsplit_once('.')
                .is_some_and(|(_, sig)| sig.contains(['-', '_']))
        })
        .expect("a signature with - or _");
    let (message, signature) = token.rsplit_once('.').unwrap();
    format!(
        "{message}.{}",
        signature.replace('-', "+").replace('_', "/")
    )
}

/// The forged-token cases: every one must be refused by the admin guard with `invalid_token`.
fn forged_tokens(
    app: &TestApp,
    real: &str,
    refresh_token: &str,
    jwks: &Value,
) -> Vec<(String, String)> {
    let header = segment(real, 0);
    let claims = segment(real, 1);
    let kid = header["kid"].as_str().unwrap().to_string();
    let signature = real.rsplit_once('.').unwrap().1.to_string();
    let message = real.rsplit_once('.').unwrap().0.to_string();
    let with = |changes: Value| {
        let mut h = header.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        h
    };
    let claims_with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let pem = p256_public_pem(&jwk);
    let attacker = PrivateKey::generate(Alg::Es256, 2048).unwrap();
    let attacker_jwk = attacker.public_jwk().to_json_value("attacker");
    let attacker_sign = |header: &Value, claims: &Value| {
        let message = compact(header, claims, "");
        let message = message.trim_end_matches('.');
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &attacker.encoding_key().unwrap(),
            jsonwebtoken::Algorithm::ES256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };
    let raw_signature = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&signature)
            .unwrap()
    };
    let flipped = {
        let mut s = raw_signature.clone();
        s[10] ^= 1;
        b64url(&s)
    };
    let hs = jsonwebtoken::Algorithm::HS256;
    let hs_header = with(json!({"alg": "HS256"}));
    let mut cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            compact(&with(json!({"alg": "none"})), &claims, ""),
        ),
        (
            "alg None",
            compact(&with(json!({"alg": "None"})), &claims, ""),
        ),
        (
            "alg NONE",
            compact(&with(json!({"alg": "NONE"})), &claims, ""),
        ),
        (
            "alg nOnE",
            compact(&with(json!({"alg": "nOnE"})), &claims, ""),
        ),
        (
            "alg none keeping the real signature",
            compact(&with(json!({"alg": "none"})), &claims, &signature),
        ),
        (
            "alg none without kid",
            compact(&json!({"alg": "none", "typ": "at+jwt"}), &claims, ""),
        ),
        (
            "alg empty",
            compact(&with(json!({"alg": ""})), &claims, &signature),
        ),
        (
            "alg missing",
            compact(&with(json!({"alg": null})), &claims, &signature),
        ),
        (
            "alg es256 lowercase",
            compact(&with(json!({"alg": "es256"})), &claims, &signature),
        ),
        (
            "HS256 keyed with the public key PEM",
            hmac_token(hs, &hs_header, &claims, pem.as_bytes()),
        ),
        (
            "HS256 keyed with the PEM without its last newline",
            hmac_token(hs, &hs_header, &claims, pem.trim_end().as_bytes()),
        ),
        (
            "HS256 keyed with the published JWK",
            hmac_token(hs, &hs_header, &claims, jwk.to_string().as_bytes()),
        ),
        (
            "HS256 keyed with the JWK set",
            hmac_token(hs, &hs_header, &claims, jwks.to_string().as_bytes()),
        ),
        (
            "HS256 keyed with the kid",
            hmac_token(hs, &hs_header, &claims, kid.as_bytes()),
        ),
        (
            "HS512 keyed with the public key PEM",
            hmac_token(
                jsonwebtoken::Algorithm::HS512,
                &with(json!({"alg": "HS512"})),
                &claims,
                pem.as_bytes(),
            ),
        ),
        (
            "HS256 keyed with an empty secret",
            hmac_token(hs, &hs_header, &claims, b""),
        ),
        (
            "alg switched to RS256",
            compact(&with(json!({"alg": "RS256"})), &claims, &signature),
        ),
        (
            "alg switched to PS256",
            compact(&with(json!({"alg": "PS256"})), &claims, &signature),
        ),
        (
            "alg switched to ES384",
            compact(&with(json!({"alg": "ES384"})), &claims, &signature),
        ),
        (
            "alg switched to EdDSA",
            compact(&with(json!({"alg": "EdDSA"})), &claims, &signature),
        ),
        (
            "unknown kid",
            compact(&with(json!({"kid": "no-such-key"})), &claims, &signature),
        ),
        (
            "path traversal kid",
            compact(
                &with(json!({"kid": "../../../../etc/passwd"})),
                &claims,
                &signature,
            ),
        ),
        (
            "path traversal kid to the manifest",
            compact(
                &with(json!({"kid": "../keys/manifest"})),
                &claims,
                &signature,
            ),
        ),
        (
            "SQL injection kid",
            compact(
                &with(json!({"kid": "' OR '1'='1' --"})),
                &claims,
                &signature,
            ),
        ),
        (
            "NUL in kid",
            compact(
                &with(json!({"kid": format!("{kid}\u{0}")})),
                &claims,
                &signature,
            ),
        ),
        (
            "empty kid",
            compact(&with(json!({"kid": ""})), &claims, &signature),
        ),
        (
            "numeric kid",
            compact(&with(json!({"kid": 1})), &claims, &signature),
        ),
        (
            "kid of 64 KiB",
            compact(
                &with(json!({"kid": "k".repeat(65536)})),
                &claims,
                &signature,
            ),
        ),
        (
            "jku to an attacker's key set, signed by the attacker",
            attacker_sign(
                &with(json!({"jku": "http://127.0.0.1:9/jwks.json", "kid": "attacker"})),
                &claims,
            ),
        ),
        (
            "x5u to an attacker's certificate, signed by the attacker",
            attacker_sign(
                &with(json!({"x5u": "http://127.0.0.1:9/cert.pem", "kid": "attacker"})),
                &claims,
            ),
        ),
        (
            "embedded jwk of the attacker",
            attacker_sign(
                &with(json!({"jwk": attacker_jwk, "kid": "attacker"})),
                &claims,
            ),
        ),
        (
            "embedded jwk of the attacker under the real kid",
            attacker_sign(&with(json!({"jwk": attacker_jwk})), &claims),
        ),
        (
            "crit exp, signed by the issuer's key",
            app.sign_raw(&with(json!({"crit": ["exp"]})), &claims),
        ),
        (
            "crit b64 false, signed by the issuer's key",
            app.sign_raw(&with(json!({"crit": ["b64"], "b64": false})), &claims),
        ),
        (
            "empty crit list",
            app.sign_raw(&with(json!({"crit": []})), &claims),
        ),
        (
            "typ JWT, signed by the issuer's key",
            app.sign_raw(&with(json!({"typ": "JWT"})), &claims),
        ),
        (
            "expired, signed by the issuer's key",
            app.sign_raw(&header, &claims_with("exp", json!(1_000_000_000))),
        ),
        (
            "not yet valid, signed by the issuer's key",
            app.sign_raw(&header, &claims_with("nbf", json!(4_000_000_000_i64))),
        ),
        (
            "another audience, signed by the issuer's key",
            app.sign_raw(&header, &claims_with("aud", json!("someone-else"))),
        ),
        (
            "another issuer, signed by the issuer's key",
            app.sign_raw(&header, &claims_with("iss", json!("https://evil.example"))),
        ),
        (
            "exp as a string, signed by the issuer's key",
            app.sign_raw(&header, &claims_with("exp", json!("9999999999"))),
        ),
        ("stripped signature", format!("{message}.")),
        ("no signature segment", message.clone()),
        (
            "truncated signature",
            format!("{message}.{}", &signature[..signature.len() - 4]),
        ),
        ("one signature bit flipped", format!("{message}.{flipped}")),
        ("signature with padding", format!("{message}.{signature}==")),
        (
            "signature in standard base64",
            standard_base64(app, &header, &claims),
        ),
        (
            "signature DER-encoded",
            format!("{message}.{}", b64url(&der_signature(&raw_signature))),
        ),
        (
            "signature doubled",
            format!("{message}.{signature}{signature}"),
        ),
        ("four segments", format!("{real}.{signature}")),
        (
            "five segments (JWE shape)",
            format!("{message}.{signature}.AAAA.BBBB"),
        ),
        (
            "claims changed, signature kept",
            compact(
                &header,
                &claims_with("roles", json!(["admin", "root"])),
                &signature,
            ),
        ),
        (
            "nested token as payload",
            format!(
                "{}.{}.{signature}",
                b64url(&serde_json::to_vec(&with(json!({"cty": "JWT"}))).unwrap()),
                b64url(real.as_bytes())
            ),
        ),
        ("nested token signed by the attacker around the real one", {
            let outer = compact(
                &with(json!({"cty": "JWT", "kid": "attacker"})),
                &json!({}),
                "",
            );
            let head = outer.split('.').next().unwrap().to_string();
            let message = format!("{head}.{}", b64url(real.as_bytes()));
            let signature = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &attacker.encoding_key().unwrap(),
                jsonwebtoken::Algorithm::ES256,
            )
            .unwrap();
            format!("{message}.{signature}")
        }),
        (
            "oversized header (256 KiB)",
            compact(
                &with(json!({"x": "a".repeat(262_144)})),
                &claims,
                &signature,
            ),
        ),
        (
            "header not JSON",
            format!(
                "{}.{}",
                b64url(b"not json"),
                real.split_once('.').unwrap().1
            ),
        ),
        (
            "header a JSON array",
            format!("{}.{}", b64url(b"[1,2]"), real.split_once('.').unwrap().1),
        ),
        (
            "header not base64url",
            format!("!!!.{}", real.split_once('.').unwrap().1),
        ),
        ("empty token", String::new()),
        ("three dots only", "..".to_string()),
        ("a refresh token as bearer", refresh_token.to_string()),
        ("NUL bytes", "\u{0}\u{0}\u{0}".to_string()),
    ];
    cases.push(("token with a NUL after it", format!("{real}\u{0}")));
    cases
        .into_iter()
        .map(|(name, token)| (format!("forged token: {name}"), token))
        .collect()
}

/// Requests abusing bodies, headers, methods, cookies and client authentication.
fn abuse_cases(secret: &str, refresh_token: &str, admin: &str) -> Vec<Case> {
    let case = |name: &str, request: Request, status: Status, error: Option<&'static str>| Case {
        name: name.to_string(),
        request,
        status,
        error,
    };
    let bad = |name: &str, request: Request| {
        case(name, request, Status::BadRequest, Some("invalid_request"))
    };
    let unauthorized = |name: &str, request: Request| {
        case(name, request, Status::Unauthorized, Some("invalid_client"))
    };
    let too_large = |name: &str, request: Request| {
        case(
            name,
            request,
            Status::PayloadTooLarge,
            Some("invalid_request"),
        )
    };
    let megabyte = "a".repeat(1 << 20);
    let many_fields = (0..100_000)
        .map(|i| format!("f{i}=x"))
        .collect::<Vec<_>>()
        .join("&");
    let cc = "grant_type=client_credentials";
    let svc_post = format!("{cc}&client_id=svc&client_secret={}", urlencode(secret));
    let with_basic = |credentials: &str, body: &str| {
        token_form(body.to_string()).header("Authorization", basic_raw(credentials))
    };
    let admin_json = |method: Method, path: &str, body: &str| {
        Request::new(method, path)
            .header("Authorization", format!("Bearer {admin}"))
            .body(ContentType::JSON, body.to_string())
    };
    vec![
        // The token endpoint's form.
        bad("form: no grant_type", token_form("username=a&password=b")),
        bad("form: empty grant_type", token_form("grant_type=")),
        case(
            "form: unknown grant_type",
            token_form("grant_type=implicit"),
            Status::BadRequest,
            Some("unsupported_grant_type"),
        ),
        case(
            "form: grant_type with a NUL",
            token_form("grant_type=password%00"),
            Status::BadRequest,
            Some("unsupported_grant_type"),
        ),
        case(
            "form: grant_type with CRLF",
            token_form("grant_type=client_credentials%0D%0AX-Injected:%201"),
            Status::BadRequest,
            Some("unsupported_grant_type"),
        ),
        // Rocket's form parser keeps a malformed escape literally: the grant is unknown.
        case(
            "form: malformed percent-encoding",
            token_form("grant_type=%zz&%%%"),
            Status::BadRequest,
            Some("unsupported_grant_type"),
        ),
        bad(
            "form: invalid UTF-8",
            token_form(b"grant_type=\xff\xfe".to_vec()),
        ),
        // An optional field that does not parse is absent (Rocket's `Option`): the login fails.
        case(
            "form: cookie is not a bool",
            token_form("grant_type=password&username=a&password=b&cookie=maybe"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        bad(
            "form: duplicate grant_type",
            token_form("grant_type=password&grant_type=client_credentials"),
        ),
        // A duplicated optional field is dropped: no secret, so no client authentication.
        unauthorized(
            "form: duplicate client_secret",
            token_form(format!("{svc_post}&client_secret=other")),
        ),
        bad(
            "form: password grant without password",
            token_form("grant_type=password&username=alice"),
        ),
        bad(
            "form: password grant without username",
            token_form("grant_type=password&password=x"),
        ),
        case(
            "form: password grant for an unknown user",
            token_form("grant_type=password&username=nobody&password=whatever"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "form: username with NUL and CRLF",
            token_form("grant_type=password&username=al%00ice%0D%0A&password=x"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        too_large(
            "form: 1 MiB body",
            token_form(format!("grant_type=password&username={megabyte}")),
        ),
        too_large("form: 100,000 fields", token_form(many_fields.clone())),
        too_large(
            "form: 1 MiB password",
            token_form(format!(
                "grant_type=password&username=a&password={megabyte}"
            )),
        ),
        case(
            "form: JSON body on the token endpoint",
            json_post("/oauth/token", r#"{"grant_type":"client_credentials"}"#),
            Status::UnsupportedMediaType,
            Some("invalid_request"),
        ),
        case(
            "form: text/plain body on the token endpoint",
            Request::new(Method::Post, "/oauth/token").body(ContentType::Plain, cc),
            Status::UnsupportedMediaType,
            Some("invalid_request"),
        ),
        case(
            "form: no body at all",
            Request::new(Method::Post, "/oauth/token"),
            Status::UnsupportedMediaType,
            Some("invalid_request"),
        ),
        case(
            "form: garbage refresh token",
            token_form("grant_type=refresh_token&refresh_token=garbage"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "form: refresh token with a NUL",
            token_form(format!(
                "grant_type=refresh_token&refresh_token={}%00",
                urlencode(refresh_token)
            )),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "form: JWT-shaped refresh token",
            token_form("grant_type=refresh_token&refresh_token=eyJhbGciOiJub25lIn0.e30."),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        bad(
            "form: refresh grant without a token",
            token_form("grant_type=refresh_token"),
        ),
        case(
            "form: scope beyond the client's",
            token_form(format!("{svc_post}&scope=admin")),
            Status::BadRequest,
            Some("invalid_scope"),
        ),
        // Client authentication (RFC 6749 §2.3.1).
        unauthorized(
            "client: client_credentials without credentials",
            token_form(cc),
        ),
        unauthorized(
            "client: client_credentials with an empty client_id",
            token_form(format!("{cc}&client_id=&client_secret=x")),
        ),
        unauthorized(
            "client: wrong secret",
            token_form(format!("{cc}&client_id=svc&client_secret=wrong")),
        ),
        unauthorized(
            "client: unknown client",
            token_form(format!("{cc}&client_id=nobody&client_secret=x")),
        ),
        unauthorized(
            "client: SQL injection client_id",
            token_form(format!(
                "{cc}&client_id=%27%20OR%201%3D1%20--&client_secret=x"
            )),
        ),
        unauthorized(
            "client: NUL in client_id",
            token_form(format!(
                "{cc}&client_id=svc%00&client_secret={}",
                urlencode(secret)
            )),
        ),
        unauthorized(
            "client: Basic not base64",
            with_basic("x", cc).header("Authorization", "Basic !!!"),
        ),
        unauthorized("client: Basic without a colon", with_basic("svc", cc)),
        unauthorized(
            "client: Basic with a bad percent-escape",
            with_basic("svc:%zz", cc),
        ),
        unauthorized(
            "client: Basic with a truncated percent-escape",
            with_basic("svc:abc%4", cc),
        ),
        unauthorized(
            "client: Basic with invalid UTF-8 after decoding",
            with_basic(&format!("svc:{}%FF", urlencode(secret)), cc),
        ),
        unauthorized(
            "client: Basic secret with + where the secret has none",
            with_basic(&format!("svc:{}+", urlencode(secret)), cc),
        ),
        case(
            "client: Basic with a percent-encoded client id (RFC 6749 §2.3.1)",
            with_basic(&format!("%73%76%63:{}", urlencode(secret)), cc),
            Status::Ok,
            None,
        ),
        case(
            "client: Basic with a raw secret (the common case)",
            with_basic(&format!("svc:{secret}"), cc),
            Status::Ok,
            None,
        ),
        unauthorized("client: Basic with an empty secret", with_basic("svc:", cc)),
        unauthorized(
            "client: Basic with an empty header",
            token_form(cc).header("Authorization", "Basic "),
        ),
        unauthorized(
            "client: Basic with a second colon in the id",
            with_basic(&format!("s:vc:{secret}"), cc),
        ),
        bad(
            "client: Basic and client_secret together",
            with_basic(&format!("svc:{secret}"), &format!("{cc}&client_secret=x")),
        ),
        bad(
            "client: Basic and another client_id in the form",
            with_basic(&format!("svc:{secret}"), &format!("{cc}&client_id=other")),
        ),
        unauthorized(
            "client: Bearer scheme instead of Basic",
            token_form(cc).header("Authorization", format!("Bearer {secret}")),
        ),
        // JSON endpoints.
        bad(
            "json: login with malformed JSON",
            json_post("/login", "{\"username\":"),
        ),
        case(
            "json: login with wrong types",
            json_post("/login", r#"{"username":1,"password":true}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "json: login with an unknown field",
            json_post("/login", r#"{"username":"a","password":"b","admin":true}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "json: login with null fields",
            json_post("/login", r#"{"username":null,"password":null}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "json: login with duplicate keys",
            json_post(
                "/login",
                r#"{"username":"root","username":"x","password":"p"}"#,
            ),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        too_large(
            "json: login with a 1 MiB body",
            json_post(
                "/login",
                format!(r#"{{"username":"{megabyte}","password":"x"}}"#),
            ),
        ),
        too_large(
            "json: login with 100,000 nested arrays",
            json_post("/login", "[".repeat(100_000)),
        ),
        case(
            "json: login with 10,000 nested arrays (under the limit)",
            json_post("/login", "[".repeat(10_000)),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        bad(
            "json: login with invalid UTF-8",
            json_post(
                "/login",
                b"{\"username\":\"\xff\",\"password\":\"x\"}".to_vec(),
            ),
        ),
        case(
            "json: login as a form",
            form("/login", "username=a&password=b"),
            Status::UnsupportedMediaType,
            Some("invalid_request"),
        ),
        case(
            "json: login with a NUL in the username",
            json_post("/login", r#"{"username":"ro\u0000ot","password":"x"}"#),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        // Sign-up is off by default: nothing is parsed, whatever the body.
        case(
            "json: signup (off) with malformed JSON",
            json_post("/signup", "{"),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "json: signup (off) with wrong types",
            json_post("/signup", r#"{"username":["a"],"password":{}}"#),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "json: signup (off) with a 1 MiB body",
            json_post(
                "/signup",
                format!(r#"{{"username":"x","password":"{megabyte}"}}"#),
            ),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "json: password change without a token",
            json_post(
                "/account/password",
                r#"{"current_password":"a","new_password":"b"}"#,
            ),
            Status::Unauthorized,
            Some("invalid_request"),
        ),
        bad(
            "admin: rotate with malformed JSON",
            admin_json(Method::Post, "/admin/keys/rotate", "{"),
        ),
        case(
            "admin: rotate to HS256",
            admin_json(Method::Post, "/admin/keys/rotate", r#"{"alg":"HS256"}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "admin: rotate to none",
            admin_json(Method::Post, "/admin/keys/rotate", r#"{"alg":"none"}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "admin: rotate with force as a string",
            admin_json(Method::Post, "/admin/keys/rotate", r#"{"force":"yes"}"#),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        too_large(
            "admin: rotate with a 1 MiB body",
            admin_json(
                Method::Post,
                "/admin/keys/rotate",
                &format!(r#"{{"alg":"{megabyte}"}}"#),
            ),
        ),
        case(
            "admin: revoke an unknown kid",
            admin_json(Method::Post, "/admin/keys/no-such-kid/revoke", ""),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "admin: revoke a traversal kid",
            admin_json(Method::Post, "/admin/keys/..%2F..%2Fmanifest/revoke", ""),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "admin: revoke a SQL kid",
            admin_json(Method::Post, "/admin/keys/'%20OR%201=1/revoke", ""),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "admin: create a user with wrong types",
            admin_json(
                Method::Post,
                "/admin/users",
                r#"{"username":7,"password":[]}"#,
            ),
            Status::UnprocessableEntity,
            Some("invalid_request"),
        ),
        case(
            "admin: user id with SQL",
            admin_json(Method::Get, "/admin/users/1%20OR%201=1", ""),
            Status::NotFound,
            Some("not_found"),
        ),
        bad(
            "admin: user list with a negative limit",
            admin_json(Method::Get, "/admin/users?limit=-1", ""),
        ),
        bad(
            "admin: audit with a bad cursor",
            admin_json(Method::Get, "/admin/audit?before=%27", ""),
        ),
        // Method confusion.
        case(
            "method: GET on the token endpoint",
            Request::new(Method::Get, "/oauth/token?grant_type=client_credentials"),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: PUT on the token endpoint",
            token_form(cc).method(Method::Put),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: DELETE on the key list",
            Request::new(Method::Delete, "/admin/keys")
                .header("Authorization", format!("Bearer {admin}")),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: POST on the JWKS",
            form("/.well-known/jwks.json", "x=1"),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: GET on revoke",
            Request::new(Method::Get, "/admin/keys/x/revoke")
                .header("Authorization", format!("Bearer {admin}")),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: GET on rotate with a token in the query",
            Request::new(
                Method::Get,
                format!("/admin/keys/rotate?access_token={admin}"),
            ),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: X-HTTP-Method-Override does not turn a GET into a rotation",
            Request::new(Method::Get, "/admin/keys/rotate")
                .header("Authorization", format!("Bearer {admin}"))
                .header("X-HTTP-Method-Override", "POST"),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: _method form field does not turn a POST into a DELETE",
            form("/admin/users/1", "_method=DELETE")
                .header("Authorization", format!("Bearer {admin}")),
            Status::NotFound,
            Some("not_found"),
        ),
        case(
            "method: unknown path",
            Request::new(Method::Get, "/admin/../etc/passwd"),
            Status::NotFound,
            Some("not_found"),
        ),
        // Smuggling-shaped headers (the in-process client hands them to Rocket as they are).
        case(
            "headers: Content-Length and Transfer-Encoding together",
            token_form(cc)
                .header("Transfer-Encoding", "chunked")
                .header("Content-Length", "4"),
            Status::Unauthorized,
            Some("invalid_client"),
        ),
        case(
            "headers: two Authorization headers",
            token_form(cc)
                .header("Authorization", basic_raw(&format!("svc:{secret}")))
                .header("Authorization", basic_raw("svc:wrong")),
            Status::Ok,
            None,
        ),
        case(
            "headers: CRLF inside the Basic value",
            token_form(cc).header(
                "Authorization",
                format!("{}\r\nX-Evil: 1", basic_raw("svc:x")),
            ),
            Status::Unauthorized,
            Some("invalid_client"),
        ),
        case(
            "headers: an 8 KiB Authorization header",
            token_form(cc).header("Authorization", format!("Basic {}", "A".repeat(8192))),
            Status::Unauthorized,
            Some("invalid_client"),
        ),
        // Cookie abuse.
        case(
            "cookie: garbage refresh cookie",
            token_form("grant_type=refresh_token").cookie("stamp_refresh", "garbage"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "cookie: 8 KiB refresh cookie",
            token_form("grant_type=refresh_token").cookie("stamp_refresh", "x".repeat(8192)),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "cookie: access token cookie does not authenticate the admin API",
            Request::new(Method::Get, "/admin/keys").cookie("stamp_access", admin),
            Status::Unauthorized,
            Some("invalid_request"),
        ),
        case(
            "cookie: forged device cookie on a failed login",
            token_form("grant_type=password&username=root&password=wrong")
                .cookie("stamp_device", "forged.value"),
            Status::BadRequest,
            Some("invalid_grant"),
        ),
        case(
            "cookie: 500 cookies",
            (0..500).fold(token_form(cc), |r, i| r.cookie(&format!("c{i}"), "v")),
            Status::Unauthorized,
            Some("invalid_client"),
        ),
        // Introspection and revocation need the caller's credentials, whatever the token.
        unauthorized(
            "introspect: no client",
            form("/oauth/introspect", format!("token={admin}")),
        ),
        unauthorized(
            "revoke: no client",
            form(
                "/oauth/revoke",
                format!("token={}", urlencode(refresh_token)),
            ),
        ),
        too_large(
            "introspect: 1 MiB token",
            form(
                "/oauth/introspect",
                format!(
                    "token={megabyte}&client_id=svc&client_secret={}",
                    urlencode(secret)
                ),
            ),
        ),
        case(
            "logout: garbage token",
            form("/logout", "refresh_token=garbage"),
            Status::NoContent,
            None,
        ),
    ]
}

impl Request {
    fn method(mut self, method: Method) -> Request {
        self.method = method;
        self
    }
}

async fn run_case(app: &TestApp, case: &Case) -> Result<(), String> {
    let request = &case.request;
    let mut call = app.client.req(request.method, request.path.clone());
    for (name, value) in &request.headers {
        call = call.header(Header::new(*name, value.clone()));
    }
    for (name, value) in &request.cookies {
        call = call.cookie(rocket::http::Cookie::new(name.clone(), value.clone()));
    }
    if let Some((content_type, body)) = &request.body {
        call = call.header(content_type.clone()).body(body.clone());
    }
    let response = call.dispatch().await;
    let status = response.status();
    let json = response.content_type() == Some(ContentType::JSON);
    let body: Value = response.into_json().await.unwrap_or(Value::Null);
    if status != case.status {
        return Err(format!(
            "{}: got {status}, want {} ({body})",
            case.name, case.status
        ));
    }
    if status.code >= 400 {
        if !json || body["error_description"].as_str().is_none_or(str::is_empty) {
            return Err(format!("{}: not a JSON OAuth error: {body}", case.name));
        }
        if let Some(error) = case.error
            && body["error"] != error
        {
            return Err(format!(
                "{}: error {}, want {error}",
                case.name, body["error"]
            ));
        }
    }
    Ok(())
}

#[rocket::async_test]
async fn hostile_requests_get_the_right_4xx_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let secret = app.add_service_client("svc", &["read"], None).await;
    let gateway = app.add_service_client("gateway", &[], None).await;
    let login = app
        .token_form(&format!(
            "grant_type=password&username=root&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    let login: Value = login.into_json().await.unwrap();
    let refresh_token = login["refresh_token"].as_str().unwrap().to_string();
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;

    // The control: the real token, and the same claims re-signed by the issuer, are accepted.
    assert_eq!(app.admin_status(&admin).await, Status::Ok);
    let resigned = app.sign_raw(&segment(&admin, 0), &segment(&admin, 1));
    assert_eq!(app.admin_status(&resigned).await, Status::Ok);

    let before = state(&app).await;
    let mut cases: Vec<Case> = forged_tokens(&app, &admin, &refresh_token, &jwks)
        .into_iter()
        .map(|(name, token)| Case {
            // RFC 6750 §3.1: no token at all is a malformed request, not an invalid token.
            error: Some(if token.is_empty() {
                "invalid_request"
            } else {
                "invalid_token"
            }),
            name,
            request: bearer(&token),
            status: Status::Unauthorized,
        })
        .collect();
    let forged = cases.len();
    cases.extend(abuse_cases(&secret, &refresh_token, &admin));
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(failure) = run_case(&app, case).await {
            failures.push(failure);
        }
    }
    // No forged token is active for introspection either.
    // No forged token is active for introspection either (an empty one is a 400; one too large
    // for the 16 KiB form limit a 413).
    for (name, token) in forged_tokens(&app, &admin, &refresh_token, &jwks) {
        let response = app
            .client
            .post("/oauth/introspect")
            .header(ContentType::Form)
            .body(format!(
                "token={}&client_id=gateway&client_secret={}",
                urlencode(&token),
                urlencode(&gateway)
            ))
            .dispatch()
            .await;
        let status = response.status();
        let body: Value = response.into_json().await.unwrap_or(Value::Null);
        // RFC 7662 introspects refresh tokens too: that one is rightly active.
        if token == refresh_token {
            continue;
        }
        if status == Status::Ok && body["active"] != false {
            failures.push(format!("{name}: introspection says {body}"));
        } else if status != Status::Ok && !matches!(status.code, 400 | 413) {
            failures.push(format!("{name}: introspection answered {status}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        state(&app).await,
        before,
        "a hostile request changed the stored state"
    );
    eprintln!(
        "hostile suite: {} cases ({forged} forged tokens)",
        cases.len()
    );
}

#[rocket::async_test]
async fn parallel_refreshes_of_one_token_yield_one_successor() {
    let app = TestApp::spawn().await;
    app.add_user("alice", PASSWORD, &[]).await;
    let login = app
        .token_form(&format!(
            "grant_type=password&username=alice&password={}",
            urlencode(PASSWORD)
        ))
        .await;
    let login: Value = login.into_json().await.unwrap();
    let refresh_token = login["refresh_token"].as_str().unwrap().to_string();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(&refresh_token)
    );
    let responses = join_all((0..16).map(|_| app.token_form(&body))).await;
    let statuses: Vec<Status> = responses.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == Status::Ok).count();
    assert_eq!(ok, 1, "exactly one successor: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == Status::Ok || *s == Status::BadRequest),
        "{statuses:?}"
    );
    // The losers presented a spent token: reuse detection revoked the whole family.
    let mut successor = None;
    for response in responses {
        if response.status() == Status::Ok {
            let body: Value = response.into_json().await.unwrap();
            successor = body["refresh_token"].as_str().map(String::from);
        }
    }
    let again = app
        .token_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(&successor.unwrap())
        ))
        .await;
    assert_eq!(
        again.status(),
        Status::BadRequest,
        "the family was revoked on reuse"
    );
}

#[rocket::async_test]
async fn parallel_rotations_revocations_and_reads_keep_the_key_set_consistent() {
    let app = TestApp::spawn_with(no_waits).await;
    let token = app.admin_token().await;
    let first = app.active_kid(Alg::Es256);
    let revoke_path = format!("/admin/keys/{first}/revoke");
    let calls = (0..12).map(|i| {
        let path = match i % 3 {
            0 => "/admin/keys/rotate",
            1 => revoke_path.as_str(),
            _ => "/admin/keys",
        };
        let method = if i % 3 == 2 {
            Method::Get
        } else {
            Method::Post
        };
        app.admin_call(method, path, &token, None)
    });
    let statuses: Vec<Status> = join_all(calls).await.iter().map(|r| r.status()).collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s.code, 200 | 401 | 404 | 409)),
        "{statuses:?}"
    );
    let set = app.app().keys.current();
    let active: Vec<_> = set
        .manifest()
        .keys
        .iter()
        .filter(|k| k.state == stamp::keys::KeyState::Active)
        .collect();
    assert_eq!(active.len(), 1, "one active key");
    assert!(
        set.manifest()
            .keys
            .iter()
            .any(|k| k.kid == first && k.state == stamp::keys::KeyState::Revoked)
    );
    // What is published is what the store holds, and a fresh token verifies with it.
    let restarted = TestApp::start(app.dir.path(), no_waits).await;
    let reloaded = restarted
        .rocket()
        .state::<stamp::App>()
        .unwrap()
        .keys
        .current();
    assert_eq!(reloaded.manifest(), set.manifest());
    app.add_user("bob", PASSWORD, &[]).await;
    let fresh = app.login("bob", PASSWORD).await;
    assert!(app.verify_with_jwks(&fresh).await.is_ok());
}

#[rocket::async_test]
async fn a_login_burst_answers_200_429_or_400_never_5xx() {
    let app = TestApp::spawn().await;
    app.add_user("carol", PASSWORD, &[]).await;
    let good = format!(
        "grant_type=password&username=carol&password={}",
        urlencode(PASSWORD)
    );
    let bad = "grant_type=password&username=carol&password=wrong-guess".to_string();
    let bodies: Vec<&String> = (0..24)
        .map(|i| if i % 3 == 0 { &good } else { &bad })
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.token_form(b))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().code).collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 400 | 429 | 503)),
        "{statuses:?}"
    );
    assert!(!statuses.contains(&500), "{statuses:?}");
    assert!(
        statuses.contains(&400),
        "wrong passwords are refused: {statuses:?}"
    );
}
