//! The process log: one `tracing` subscriber for the issuer's events and Rocket's `log` records,
//! written as text or as one JSON object per line (`log_format`), without secrets at any level.
//!
//! Rocket installs its own logger at ignition unless one is installed already. Its `debug` level
//! prints every request and response in full (`received request: …` with the `Authorization`
//! header and cookies, `sending response: …` with `Set-Cookie`) and every url-encoded form field
//! (`url-encoded field: ("password", …)`), and its `normal` level prints four lines per request,
//! one of them the URI with its query string. [`init`] installs the `log` → `tracing` bridge
//! first, so Rocket finds a logger in place and leaves it, and a [`tracing_subscriber`] registry
//! with this module's layer. The layer drops the records that carry request data wholesale,
//! drops Rocket's per-request chatter below `debug` (the request log in
//! `routes/request_log.rs` writes one line per request instead), and passes the message and
//! every string field of everything else through [`redact`], which masks credentials wherever
//! they appear (form and query fields, JSON fields, `Bearer`/`Basic` credentials, cookie and
//! authorization headers, URL passwords). The layer formats lines itself rather than with
//! `tracing_subscriber::fmt`, whose formatters cannot rewrite field values.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use rocket::config::LogLevel;
use rocket::figment::Figment;
use serde::Deserialize;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// Names of fields whose values are secrets, in forms, queries and JSON.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "new_password",
    "current_password",
    "client_secret",
    "refresh_token",
    "access_token",
    "id_token",
    "token",
    "code",
    "code_verifier",
    "assertion",
    "key_encryption_key",
];

/// Headers whose values are credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// What replaces a secret.
const MASK: &str = "<redacted>";

/// How log lines are written: the `log_format` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Rocket's lines as they are, and `key=value` pairs after the message of structured events.
    #[default]
    Text,
    /// One JSON object per line: `time`, `level`, `target`, `message` and the event's fields.
    Json,
}

/// The installed level (a [`LevelFilter`] as [`level_index`] numbers it) and format: `init`
/// may run more than once per process (tests build many apps), the subscriber only once.
static LEVEL: AtomicU8 = AtomicU8::new(0);
static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Installs the subscriber and the `log` bridge (once per process) and sets the level the
/// figment's `log_level` names, as Rocket would, and the format `log_format` names (`text` if it
/// is invalid: the configuration check then refuses it by name).
pub fn init(figment: &Figment) {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let level = figment
        .extract_inner::<LogLevel>("log_level")
        .unwrap_or(rocket::Config::default().log_level);
    let format = figment
        .extract_inner::<LogFormat>("log_format")
        .unwrap_or_default();
    let filter = match level {
        LogLevel::Critical => LevelFilter::WARN,
        LogLevel::Normal => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::TRACE,
        LogLevel::Off => LevelFilter::OFF,
    };
    LEVEL.store(level_index(filter), Ordering::Relaxed);
    FORMAT.store(u8::from(format == LogFormat::Json), Ordering::Relaxed);
    let installed = *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(RedactingLayer);
        let subscriber_set = tracing::subscriber::set_global_default(subscriber).is_ok();
        subscriber_set && tracing_log::LogTracer::init().is_ok()
    });
    tracing::callsite::rebuild_interest_cache();
    if installed {
        log::set_max_level(match level {
            LogLevel::Critical => log::LevelFilter::Warn,
            LogLevel::Normal => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Trace,
            LogLevel::Off => log::LevelFilter::Off,
        });
    }
}

/// The format [`init`] installed (`text` before it ran).
pub fn format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// The installed level filter.
fn level() -> LevelFilter {
    match LEVEL.load(Ordering::Relaxed) {
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        5 => LevelFilter::TRACE,
        _ => LevelFilter::OFF,
    }
}

fn level_index(filter: LevelFilter) -> u8 {
    match filter.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    }
}

/// The one layer: filters, redacts and writes every event.
struct RedactingLayer;

impl<S: tracing::Subscriber> Layer<S> for RedactingLayer {
    fn register_callsite(
        &self,
        _metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The level may change while the process runs (`init` again): ask each time.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        *metadata.level() <= level()
    }

    /// Lets `tracing` skip disabled levels (the libraries' `debug!`/`trace!` on every request)
    /// before asking the layer; [`init`] rebuilds the cache when the level changes.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(level())
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| event.metadata().target().to_string());
        let message = strip_ansi(&fields.message);
        if !shown(&target, level, &message, self::level()) {
            return;
        }
        let line = match format() {
            LogFormat::Json => json_line(level, &target, &redact(&message), &fields.values),
            LogFormat::Text => text_line(level, &target, &redact(&message), &fields.values),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
    }
}

/// An event's message, its `log` target (for Rocket's records) and its other fields, with every
/// string value already redacted.
#[derive(Default)]
struct Fields {
    message: String,
    log_target: Option<String>,
    values: Vec<(String, Value)>,
}

impl Fields {
    fn add(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        self.values.push((name.to_string(), value));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "log.target" => self.log_target = Some(value.to_string()),
            _ => self.add(field, Value::String(redact(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            _ => self.add(field, Value::String(redact(&format!("{value:?}")))),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, Value::Bool(value));
    }
}

/// Whether a record at `level` from `target` is written at all, under the level `filter`
/// (which has already let it through).
fn shown(target: &str, level: Level, message: &str, filter: LevelFilter) -> bool {
    if carries_request_data(target, level) {
        return false;
    }
    if filter == LevelFilter::TRACE {
        return true;
    }
    let debug_only = ["hyper", "h2", "rustls", "tokio_util"]
        .iter()
        .any(|m| target.starts_with(m));
    !debug_only && !request_chatter(target, level, message)
}

/// Rocket's records that exist to show request or response data: the whole hyper request and
/// response (`rocket::server`, debug), and every parsed form field (`rocket::form`, trace).
fn carries_request_data(target: &str, level: Level) -> bool {
    (target.starts_with("rocket::server") && level >= Level::DEBUG)
        || target.starts_with("rocket::form")
}

/// Rocket's lines about each request (`GET /path?query:`, `Matched: …`, `Outcome: …`,
/// `Response succeeded.`, the 404's `No matching routes for …` and the catcher it used), and
/// the warnings its generated handler code writes in our route modules (`Request guard `Admin`
/// failed: …`, `… is forwarding.`, a query that does not match): at `normal` and `critical` the
/// request log's one line per request, with its `error` code, replaces them.
fn request_chatter(target: &str, level: Level, message: &str) -> bool {
    let indented = target.ends_with("::_");
    if target.starts_with("stamp::routes") {
        return indented && level == Level::WARN;
    }
    if !target.starts_with("rocket::server") {
        return false;
    }
    (level == Level::INFO && (indented || is_request_line(message)))
        || message.starts_with("No matching routes for")
        || message.starts_with("Responding with registered")
}

/// `GET /path?query text/html:`, Rocket's display of a request.
fn is_request_line(message: &str) -> bool {
    let mut words = message.split(' ');
    let method = words.next().unwrap_or_default();
    !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && words.next().is_some_and(|uri| uri.starts_with('/'))
}

/// Rocket's format (an `Error:`/`Warning:` prefix, `>>` for its indented lines) and then the
/// event's fields as `key=value`.
fn text_line(level: Level, target: &str, message: &str, fields: &[(String, Value)]) -> String {
    let indented = target.ends_with('_');
    // Rocket logs its launch banner as a warning so that it shows at `critical`; it is news,
    // not a problem.
    let launch = target.starts_with("rocket::launch");
    let mut line = match level {
        Level::ERROR if !indented => format!("Error: {message}"),
        Level::WARN if !indented && !launch => format!("Warning: {message}"),
        _ if indented => format!("   >> {message}"),
        _ => message.to_string(),
    };
    for (key, value) in fields {
        match value {
            Value::String(text) if !text.is_empty() && !text.contains([' ', '"', '=']) => {
                line.push_str(&format!(" {key}={text}"));
            }
            other => line.push_str(&format!(" {key}={other}")),
        }
    }
    line.push('\n');
    line
}

/// One JSON object and a newline: `time` (RFC 3339, UTC, milliseconds), `level`, `target`,
/// `message`, then `fields` in their order (a field cannot replace the first four). The message
/// and fields are written as given: the layer has redacted its events already; `main` prints its
/// start-up summary and errors with it.
pub fn json_line(level: Level, target: &str, message: &str, fields: &[(String, Value)]) -> String {
    const FIRST: [&str; 4] = ["time", "level", "target", "message"];
    let now = crate::clock::Clock::system().now_millis();
    let first = [
        rfc3339_millis(now),
        level.as_str().to_string(),
        target.trim_end_matches("::_").to_string(),
        message.to_string(),
    ];
    let mut line = String::from("{");
    let first = FIRST.iter().zip(first.map(Value::String));
    let rest = fields
        .iter()
        .filter(|(key, _)| !FIRST.contains(&key.as_str()));
    for (i, (key, value)) in first
        .map(|(key, value)| (key.to_string(), value))
        .chain(rest.cloned())
        .enumerate()
    {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::String(key).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push_str("}\n");
    line
}

/// `millis` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339_millis(millis: i64) -> String {
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let seconds = crate::admin::rfc3339(secs);
    let whole = seconds.strip_suffix('Z').unwrap_or(&seconds);
    format!("{whole}.{ms:03}Z")
}

/// `text` without terminal colour codes (`ESC [ … letter`): Rocket paints its lines when
/// stdout is a terminal.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

/// `text` with every credential it shows replaced by `<redacted>`: values of [`SECRET_FIELDS`]
/// as `name=value` (forms, queries, `Debug` output) or `"name":"value"` (JSON), `Bearer` and
/// `Basic` credentials, [`SECRET_HEADERS`] values, and passwords in URLs (`user:pw@`,
/// `?password=`).
pub fn redact(text: &str) -> String {
    // Every pattern below needs one of these: most lines and fields (routes, ids, addresses,
    // plain messages) have none, and are returned without the passes.
    let may_hold_a_secret =
        text.contains(['=', '"', ':']) || text.contains("Bearer ") || text.contains("Basic ");
    if !may_hold_a_secret {
        return text.to_string();
    }
    let mut out = text.to_string();
    for field in SECRET_FIELDS {
        out = mask_after(&out, &format!("{field}="), Match::Field);
        out = mask_json_field(&out, field);
        // `("password", "…")`: Rocket's Debug of a form field.
        out = mask_after(&out, &format!("\"{field}\", "), Match::Field);
    }
    for header in SECRET_HEADERS {
        out = mask_after(&out, &format!("{header}: "), Match::Line);
        out = mask_after(&out, &format!("\"{header}\": "), Match::Line);
    }
    for scheme in ["Bearer ", "Basic "] {
        out = mask_after(&out, scheme, Match::Scheme);
    }
    mask_url_passwords(&out)
}

/// How [`mask_after`] finds a key and where its value ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Match {
    /// A field name, case-insensitive, starting a word; the value ends at a delimiter.
    Field,
    /// A header name, case-insensitive; the value runs to the end of the line.
    Line,
    /// An authentication scheme, as written (`Bearer `); the value ends at a delimiter.
    Scheme,
}

/// Masks the value after every occurrence of `key`; a quoted value ends at its closing quote.
fn mask_after(text: &str, key: &str, how: Match) -> String {
    let (haystack, key) = if how == Match::Scheme {
        (text.to_string(), key.to_string())
    } else {
        (text.to_ascii_lowercase(), key.to_ascii_lowercase())
    };
    let bytes = haystack.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = haystack[from..].find(&key) {
        let start = from + found;
        let value_start = start + key.len();
        from = value_start;
        let starts_word =
            start == 0 || !bytes[start - 1].is_ascii_alphanumeric() && bytes[start - 1] != b'_';
        if how == Match::Field && !starts_word {
            continue;
        }
        let rest = &text[value_start..];
        let quoted = rest.starts_with('"');
        let body = if quoted { &rest[1..] } else { rest };
        let end = body
            .find(|c: char| match (quoted, how) {
                (true, _) => c == '"',
                (false, Match::Line) => c == '\n' || c == '\r',
                (false, _) => c.is_whitespace() || "&\"',;)}]".contains(c),
            })
            .unwrap_or(body.len());
        if end == 0 {
            continue;
        }
        let value_start = value_start + usize::from(quoted);
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_start + end;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// Masks `"field":"value"` and `"field": "value"` (JSON bodies and `Debug` of maps).
fn mask_json_field(text: &str, field: &str) -> String {
    let out = mask_after(text, &format!("\"{field}\":"), Match::Line);
    mask_after(&out, &format!("\"{field}\": "), Match::Line)
}

/// Masks the password of every `scheme://user:password@host` in `text`.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority
            .rfind('@')
            .and_then(|a| authority[..a].find(':').map(|colon| (colon, a)))
        {
            Some((colon, a)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[a..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_wherever_they_appear() {
        let cases = [
            (
                "grant_type=password&username=alice&password=hunter2&scope=openid",
                "grant_type=password&username=alice&password=<redacted>&scope=openid",
            ),
            (
                "url-encoded field: (\"refresh_token\", \"abc.def\")",
                "url-encoded field: (\"refresh_token\", \"<redacted>\")",
            ),
            (
                r#"{"username":"alice","password":"s3 cret"}"#,
                r#"{"username":"alice","password":"<redacted>"}"#,
            ),
            (
                "authorization: Basic YWxpY2U6cHc=",
                "authorization: <redacted>",
            ),
            ("got Bearer eyJhbGciOi.x.y now", "got Bearer <redacted> now"),
            (
                "postgres://stamp:pw@db:5432/x?sslmode=require&password=swordfish",
                "postgres://stamp:<redacted>@db:5432/x?sslmode=require&password=<redacted>",
            ),
            (
                "GET /authorize?code=abc&state=xyz",
                "GET /authorize?code=<redacted>&state=xyz",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn rockets_request_chatter_is_left_to_the_request_log_below_debug() {
        let chatter = [
            (
                "rocket::server",
                Level::INFO,
                "GET /authorize?code=abc text/html:",
            ),
            (
                "rocket::server::_",
                Level::INFO,
                "Matched: (token) POST /oauth/token",
            ),
            ("rocket::server::_", Level::INFO, "Outcome: Success(200 OK)"),
            ("rocket::server::_", Level::INFO, "Response succeeded."),
            (
                "rocket::server::_",
                Level::ERROR,
                "No matching routes for GET /x?y.",
            ),
            (
                "rocket::server::_",
                Level::WARN,
                "Responding with registered (default) catcher.",
            ),
            (
                "stamp::routes::admin::_",
                Level::WARN,
                "Request guard `Admin` failed: ….",
            ),
            (
                "stamp::routes::oidc::_",
                Level::WARN,
                "Query string failed to match route declaration.",
            ),
        ];
        for (target, level, message) in chatter {
            assert!(
                !shown(target, level, message, LevelFilter::INFO),
                "{message}"
            );
            assert!(
                !shown(target, level, message, LevelFilter::WARN),
                "{message}"
            );
            assert!(
                shown(target, level, message, LevelFilter::TRACE),
                "{message}"
            );
        }
        let news = [
            (
                "rocket::launch",
                Level::WARN,
                "Rocket has launched from http://127.0.0.1:8000",
            ),
            (
                "rocket::server",
                Level::INFO,
                "Shutdown requested. Waiting for pending I/O...",
            ),
            (
                "rocket::server",
                Level::WARN,
                "Received SIGTERM. Requesting shutdown.",
            ),
            ("stamp::request", Level::INFO, "request"),
            ("stamp::jobs", Level::WARN, "database unavailable"),
            ("stamp::error", Level::WARN, "refresh token reuse detected"),
        ];
        for (target, level, message) in news {
            assert!(
                shown(target, level, message, LevelFilter::INFO),
                "{message}"
            );
        }
        // Request and response dumps and form fields: never, not even at debug.
        assert!(!shown(
            "rocket::server",
            Level::DEBUG,
            "received request",
            LevelFilter::TRACE
        ));
        assert!(!shown(
            "rocket::form::_",
            Level::TRACE,
            "url-encoded field",
            LevelFilter::TRACE
        ));
        assert!(!shown(
            "hyper::proto",
            Level::INFO,
            "read",
            LevelFilter::INFO
        ));
    }

    #[test]
    fn json_lines_carry_time_level_target_message_and_fields() {
        let fields = [
            ("status".to_string(), Value::from(200)),
            (
                "level".to_string(),
                Value::from("a field cannot replace the level"),
            ),
            ("quote".to_string(), Value::from("a \"quoted\"\nline")),
        ];
        let line = json_line(Level::WARN, "rocket::server::_", "hi", &fields);
        assert!(line.starts_with(r#"{"time":""#), "{line}");
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let object: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(object["level"], "WARN");
        assert_eq!(object["target"], "rocket::server");
        assert_eq!(object["message"], "hi");
        assert_eq!(object["status"], 200);
        assert_eq!(object["quote"], "a \"quoted\"\nline");
        let time = object["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-11-30T09:32:56.000Z".len(), "{time}");
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(
            rfc3339_millis(1_796_031_176_007),
            "2026-11-30T09:32:56.007Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[32mResponse succeeded.\u{1b}[0m done"),
            "Response succeeded. done"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn ordinary_lines_are_left_alone() {
        for line in [
            "POST /oauth/token application/x-www-form-urlencoded:",
            "Matched: (token) POST /oauth/token",
            "grant_type=client_credentials&scope=read",
            "sqlite://stamp.db",
            "postgres://stamp@db/stamp",
        ] {
            assert_eq!(redact(line), line);
        }
    }
}
