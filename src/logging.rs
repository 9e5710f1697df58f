//! The process logger: Rocket's log lines, without secrets, at every level.
//!
//! Rocket installs its own logger at ignition unless one is installed already. Its `debug` level
//! prints every request and response in full (`received request: …` with the `Authorization`
//! header and cookies, `sending response: …` with `Set-Cookie`) and every url-encoded form field
//! (`url-encoded field: ("password", …)`), and its `normal` level prints each request's URI with
//! its query string. [`init`] installs this logger first: it writes Rocket's format (without
//! colours), drops the records that carry request data wholesale, and passes every other line
//! through [`redact`], which masks credentials wherever they appear (form and query fields,
//! JSON fields, `Bearer`/`Basic` credentials, cookie and authorization headers, URL passwords).

use std::io::Write as _;
use std::sync::OnceLock;

use rocket::config::LogLevel;
use rocket::figment::Figment;

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

/// Installs the redacting logger (once per process) and sets the level the figment's
/// `log_level` names, as Rocket would. Rocket then finds a logger in place and leaves it.
pub fn init(figment: &Figment) {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let level = figment
        .extract_inner::<LogLevel>("log_level")
        .unwrap_or(rocket::Config::default().log_level);
    let installed = *INSTALLED.get_or_init(|| log::set_logger(&RedactingLogger).is_ok());
    if installed {
        log::set_max_level(match level {
            LogLevel::Critical => log::LevelFilter::Warn,
            LogLevel::Normal => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Trace,
            LogLevel::Off => log::LevelFilter::Off,
        });
    }
}

struct RedactingLogger;

impl log::Log for RedactingLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) || carries_request_data(record) {
            return;
        }
        let debug_only = ["hyper", "h2", "rustls", "tokio_util"]
            .iter()
            .any(|m| record.module_path().is_some_and(|p| p.starts_with(m)));
        if debug_only && log::max_level() < log::LevelFilter::Trace {
            return;
        }
        let text = redact(&record.args().to_string());
        let indented = record.target().ends_with('_');
        let prefix = if indented { "   >> " } else { "" };
        // Rocket logs its launch banner as a warning so that it shows at `critical`; it is news,
        // not a problem.
        let launch = record.target().starts_with("rocket::launch");
        let line = match record.level() {
            log::Level::Error if !indented => format!("Error: {text}"),
            log::Level::Warn if !indented && !launch => format!("Warning: {text}"),
            _ => text,
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{prefix}{line}");
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Rocket's records that exist to show request or response data: the whole hyper request and
/// response (`rocket::server`, debug), and every parsed form field (`rocket::form`, trace).
fn carries_request_data(record: &log::Record<'_>) -> bool {
    let target = record.target();
    (target.starts_with("rocket::server") && record.level() >= log::Level::Debug)
        || target.starts_with("rocket::form")
}

/// `text` with every credential it shows replaced by `<redacted>`: values of [`SECRET_FIELDS`]
/// as `name=value` (forms, queries, `Debug` output) or `"name":"value"` (JSON), `Bearer` and
/// `Basic` credentials, [`SECRET_HEADERS`] values, and passwords in URLs (`user:pw@`,
/// `?password=`).
pub fn redact(text: &str) -> String {
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
