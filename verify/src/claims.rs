//! The claims of a verified access token (RFC 9068 §2.2), parsed once from the payload.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// The claims of a token that passed every check. Fields the rules require are plain values;
/// the others are optional because third-party issuers may leave them out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The issuer (checked against the configured one).
    pub iss: String,
    /// The subject: a stable user or client id.
    pub sub: String,
    /// The audiences (one of them is an accepted one).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The token's unique id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client the token was issued to (RFC 9068 §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes (RFC 8693 §4.2); see [`Claims::has_scope`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Roles (RFC 9068 §7.2.1.1), empty when absent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Claims {
    /// Whether `scope` lists `wanted` (an exact, case-sensitive match of one scope token).
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|t| t == wanted))
    }

    /// Whether `roles` contains `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3). Serialised back in the same
/// shape: a single audience as a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether any of `accepted` is one of the token's audiences.
    pub fn contains_any(&self, accepted: &[String]) -> bool {
        self.0.iter().any(|a| accepted.contains(a))
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(a) = seq.next_element::<String>()? {
                    all.push(a);
                }
                Ok(Audience(all))
            }
        }
        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, an integer or a fraction (truncated).
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("date out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    Ok(NumericDate(v.trunc() as i64))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}

/// The payload as sent: everything optional, so that a missing claim is reported by name.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    jti: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Parses the decoded payload; `iss`, `sub`, `aud` and `exp` must be present.
pub(crate) fn parse(payload: &[u8]) -> Result<Claims, VerifyError> {
    let raw: RawClaims =
        serde_json::from_slice(payload).map_err(|_| VerifyError::Malformed("payload claims"))?;
    Ok(Claims {
        iss: raw.iss.ok_or(VerifyError::MissingClaim("iss"))?,
        sub: raw.sub.ok_or(VerifyError::MissingClaim("sub"))?,
        aud: raw.aud.ok_or(VerifyError::MissingClaim("aud"))?,
        exp: raw.exp.ok_or(VerifyError::MissingClaim("exp"))?.0,
        nbf: raw.nbf.map(|d| d.0),
        iat: raw.iat.map(|d| d.0),
        jti: raw.jti,
        client_id: raw.client_id,
        scope: raw.scope,
        roles: raw.roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_a_string_or_an_array() {
        let one = parse(br#"{"iss":"i","sub":"s","aud":"a","exp":1}"#).unwrap();
        assert_eq!(one.aud, Audience(vec!["a".into()]));
        let many = parse(br#"{"iss":"i","sub":"s","aud":["a","b"],"exp":1}"#).unwrap();
        assert!(many.aud.contains_any(&["b".into()]));
        assert!(!many.aud.contains_any(&["c".into()]));
        assert_eq!(serde_json::to_value(&one).unwrap()["aud"], "a");
    }

    #[test]
    fn fractional_dates_are_truncated_and_strings_refused() {
        let c = parse(br#"{"iss":"i","sub":"s","aud":"a","exp":10.9,"nbf":2}"#).unwrap();
        assert_eq!((c.exp, c.nbf), (10, Some(2)));
        assert_eq!(
            parse(br#"{"iss":"i","sub":"s","aud":"a","exp":"10"}"#),
            Err(VerifyError::Malformed("payload claims"))
        );
    }

    #[test]
    fn missing_required_claims_are_named() {
        assert_eq!(
            parse(br#"{"sub":"s","aud":"a","exp":1}"#),
            Err(VerifyError::MissingClaim("iss"))
        );
        assert_eq!(
            parse(br#"{"iss":"i","sub":"s","exp":1}"#),
            Err(VerifyError::MissingClaim("aud"))
        );
        assert_eq!(
            parse(br#"{"iss":"i","sub":"s","aud":"a"}"#),
            Err(VerifyError::MissingClaim("exp"))
        );
    }

    #[test]
    fn scopes_match_whole_tokens_only() {
        let mut c = parse(br#"{"iss":"i","sub":"s","aud":"a","exp":1}"#).unwrap();
        assert!(!c.has_scope("read"));
        c.scope = Some("orders:read profile".into());
        assert!(c.has_scope("orders:read"));
        assert!(!c.has_scope("orders"));
    }
}
