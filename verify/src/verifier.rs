//! The verifier, in the cheap and safe order: header rules (typ, algorithm allowlist, no `crit`)
//! and `iss` first, so that a token of another issuer never causes a key lookup (nor a JWKS
//! fetch); then the key named by `kid`, whose own algorithm must be the header's, the signature
//! (jsonwebtoken on aws-lc-rs), and `aud`, `exp` and (when present) `nbf` at a given time with a
//! small leeway, and the claims the RFC 9068 profile requires (`iat`, `jti`, `client_id`).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::claims::{self, Claims};
#[cfg(feature = "http")]
use crate::client::{JwksClient, JwksConfig};
use crate::{ACCESS_TOKEN_TYP, Alg, KeySource, VerifyError, VerifyingKey, VerifyingKeys};

/// Largest leeway accepted: clocks a few minutes apart are a fault to fix, not to tolerate.
pub const MAX_LEEWAY: u64 = 300;

/// What a token must satisfy.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// The only accepted `iss`, compared exactly.
    pub issuer: String,
    /// `aud` must contain at least one of these. Never empty.
    pub audiences: Vec<String>,
    /// Accepted algorithms. Only asymmetric ones can be named, so `none` and HMAC never pass.
    pub algorithms: Vec<Alg>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most [`MAX_LEEWAY`]).
    pub leeway: u64,
    /// Required `typ` header: `Some("at+jwt")` (RFC 9068 §4) by default. `None` accepts any,
    /// only for issuers that do not type their access tokens.
    pub typ: Option<String>,
    /// Whether `nbf` must be present (it is always checked when present). Off by default: RFC
    /// 9068 §2.2 does not require it, and valid tokens of other issuers leave it out.
    pub require_nbf: bool,
}

impl VerifierConfig {
    /// The defaults: both algorithms, 5 s leeway, `typ` `at+jwt` (and so the RFC 9068 profile's
    /// required claims), `nbf` optional.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierConfig {
        VerifierConfig {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            algorithms: Alg::ALL.to_vec(),
            leeway: 5,
            typ: Some(ACCESS_TOKEN_TYP.to_string()),
            require_nbf: false,
        }
    }

    /// Whether the RFC 9068 profile applies: the `typ` required is `at+jwt`. Its tokens must
    /// carry `iat`, `jti` and `client_id` besides `iss`, `sub`, `aud` and `exp` (§2.2).
    fn at_jwt_profile(&self) -> bool {
        self.typ
            .as_deref()
            .is_some_and(|t| typ_matches(t, ACCESS_TOKEN_TYP))
    }
}

/// Verifies access tokens offline with the issuer's published keys.
///
/// `K` is where [`Verifier::verify`] finds keys: a [`JwksClient`] (the default, with the `http`
/// feature), a fixed [`VerifyingKeys`], any other [`KeySource`], or `()` for a verifier used only
/// through [`Verifier::verify_with`], which takes the keys with each call.
#[cfg(feature = "http")]
#[derive(Clone, Debug)]
pub struct Verifier<K = JwksClient> {
    config: VerifierConfig,
    keys: K,
}

/// Verifies access tokens offline with the issuer's published keys.
///
/// `K` is where [`Verifier::verify`] finds keys: a fixed [`VerifyingKeys`], any other
/// [`KeySource`], or `()` for a verifier used only through [`Verifier::verify_with`], which takes
/// the keys with each call.
#[cfg(not(feature = "http"))]
#[derive(Clone, Debug)]
pub struct Verifier<K> {
    config: VerifierConfig,
    keys: K,
}

/// The protected header members this verifier reads; the rest are ignored, and in particular
/// `jku`, `x5u` and `jwk` are never followed (keys come from the configured issuer only).
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The three parts of a compact JWS.
struct Parts<'t> {
    header: Vec<u8>,
    /// `header.payload`, the signing input.
    message: &'t str,
    payload: &'t str,
    signature: &'t str,
}

impl<'t> Parts<'t> {
    fn split(token: &'t str) -> Result<Parts<'t>, VerifyError> {
        let (message, signature) = token
            .rsplit_once('.')
            .ok_or(VerifyError::Malformed("not three dot-separated parts"))?;
        let (header, payload) = message
            .split_once('.')
            .ok_or(VerifyError::Malformed("not three dot-separated parts"))?;
        if payload.contains('.') {
            return Err(VerifyError::Malformed("not three dot-separated parts"));
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Malformed("header is not base64url"))?;
        Ok(Parts {
            header,
            message,
            payload,
            signature,
        })
    }
}

#[cfg(feature = "http")]
impl Verifier<JwksClient> {
    /// A verifier for `issuer`'s tokens meant for `audience`, finding the keys through discovery,
    /// with default rules and cache settings.
    pub fn for_issuer(issuer: &str, audience: &str) -> Result<Verifier, VerifyError> {
        let keys = JwksClient::discover(issuer, JwksConfig::default())?;
        Ok(Verifier::new(VerifierConfig::new(issuer, audience), keys))
    }
}

impl<K: KeySource> Verifier<K> {
    /// Verifies `token` at `now` (seconds since the epoch), asking the key source for the key it
    /// names (the JWKS client fetches when needed), and returns its claims. The error says which
    /// check failed.
    ///
    /// `typ`, `alg` and `iss` are checked before the key source is asked: a token of another
    /// issuer is refused as [`VerifyError::WrongIssuer`] without any fetch.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let parts = Parts::split(token)?;
        let (alg, kid) = self.check_header(&parts.header)?;
        let claims = self.check_issuer(&parts)?;
        let key = self.keys.key(kid.as_deref(), alg, now).await?;
        self.check(&parts, alg, &key, claims, now)
    }
}

impl<K> Verifier<K> {
    /// A verifier of tokens meeting `config`, with keys from `keys`. The leeway is capped at
    /// [`MAX_LEEWAY`].
    pub fn new(mut config: VerifierConfig, keys: K) -> Verifier<K> {
        config.leeway = config.leeway.min(MAX_LEEWAY);
        // `iss` is compared exactly, as given: some issuers end theirs with a slash.
        Verifier { config, keys }
    }

    /// The rules in force.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The key source (for the JWKS client: warm-up and cache status).
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// Verifies `token` at `now` with the given, already parsed key set, without asking the key
    /// source: for callers that manage keys themselves (the issuer's own online checks), and for
    /// tests. The same rules as [`Verifier::verify`].
    pub fn verify_with(
        &self,
        keys: &VerifyingKeys,
        token: &str,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let parts = Parts::split(token)?;
        let (alg, kid) = self.check_header(&parts.header)?;
        let claims = self.check_issuer(&parts)?;
        let key = keys.lookup(kid.as_deref(), alg)?;
        self.check(&parts, alg, key, claims, now)
    }

    /// Parses the (not yet verified) payload and checks `iss`, before any key is looked up. The
    /// claims are returned only to [`Verifier::check`], which verifies the signature first.
    fn check_issuer(&self, parts: &Parts<'_>) -> Result<Claims, VerifyError> {
        let claims = parse_payload(parts)?;
        self.check_iss(&claims)?;
        Ok(claims)
    }

    fn check_iss(&self, claims: &Claims) -> Result<(), VerifyError> {
        if claims.iss != self.config.issuer {
            return Err(VerifyError::WrongIssuer {
                found: claims.iss.clone(),
                expected: self.config.issuer.clone(),
            });
        }
        Ok(())
    }

    /// `typ`, `crit` and the algorithm allowlist; returns the algorithm and `kid`.
    fn check_header<'h>(
        &self,
        header: &'h [u8],
    ) -> Result<(Alg, Option<Cow<'h, str>>), VerifyError> {
        let header = parse_header(header)?;
        self.check_typ(&header)?;
        check_crit(&header)?;
        let alg = self.check_alg(&header)?;
        Ok((alg, header.kid))
    }

    /// RFC 9068 §4: the `typ` the configuration requires.
    fn check_typ(&self, header: &Header<'_>) -> Result<(), VerifyError> {
        match &self.config.typ {
            Some(expected)
                if !header
                    .typ
                    .as_deref()
                    .is_some_and(|t| typ_matches(t, expected)) =>
            {
                Err(VerifyError::WrongType {
                    found: header.typ.as_deref().map(str::to_string),
                })
            }
            _ => Ok(()),
        }
    }

    /// The algorithm allowlist (RFC 8725 §3.1).
    fn check_alg(&self, header: &Header<'_>) -> Result<Alg, VerifyError> {
        header
            .alg
            .parse::<Alg>()
            .ok()
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| VerifyError::AlgorithmNotAllowed(header.alg.to_string()))
    }

    /// The key's algorithm, the signature, then the claims (parsed by
    /// [`Verifier::check_issuer`]).
    fn check(
        &self,
        parts: &Parts<'_>,
        alg: Alg,
        key: &VerifyingKey,
        claims: Claims,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        check_key_alg(key, alg)?;
        check_signature(parts, alg, key)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), VerifyError> {
        self.check_profile(claims)?;
        self.check_audience(claims)?;
        self.check_expiry(claims, now)?;
        self.check_not_before(claims, now)
    }

    /// RFC 9068 §2.2: the profile's required claims, when the profile applies.
    fn check_profile(&self, claims: &Claims) -> Result<(), VerifyError> {
        if self.config.at_jwt_profile() {
            if claims.iat.is_none() {
                return Err(VerifyError::MissingClaim("iat"));
            }
            if claims.jti.is_none() {
                return Err(VerifyError::MissingClaim("jti"));
            }
            if claims.client_id.is_none() {
                return Err(VerifyError::MissingClaim("client_id"));
            }
        }
        Ok(())
    }

    fn check_audience(&self, claims: &Claims) -> Result<(), VerifyError> {
        if !claims.aud.contains_any(&self.config.audiences) {
            return Err(VerifyError::WrongAudience {
                found: claims.aud.0.clone(),
                expected: self.config.audiences.clone(),
            });
        }
        Ok(())
    }

    /// RFC 7519 §4.1.4: the current time must be before `exp` (plus the leeway).
    fn check_expiry(&self, claims: &Claims, now: i64) -> Result<(), VerifyError> {
        let leeway = self.config.leeway as i64;
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired {
                exp: claims.exp,
                now,
                leeway: self.config.leeway,
            });
        }
        Ok(())
    }

    /// RFC 7519 §4.1.5: not before `nbf` (minus the leeway), when present or required.
    fn check_not_before(&self, claims: &Claims, now: i64) -> Result<(), VerifyError> {
        let leeway = self.config.leeway as i64;
        match claims.nbf {
            Some(nbf) if now.saturating_add(leeway) < nbf => Err(VerifyError::NotYetValid {
                nbf,
                now,
                leeway: self.config.leeway,
            }),
            None if self.config.require_nbf => Err(VerifyError::MissingClaim("nbf")),
            _ => Ok(()),
        }
    }

    /// Every check of [`Verifier::verify_with`] on its own, so that a tool (the issuer's token
    /// inspector) can show each one that fails, not only the first. A check whose input an
    /// earlier one could not provide (no allowed algorithm, no key, unreadable claims) is
    /// reported as not run. The token is valid for [`Verifier::verify_with`] exactly when every
    /// check ran and passed.
    ///
    /// Only a token that is not a compact JWS with a JSON header naming `alg` is an error.
    pub fn diagnose_with(
        &self,
        keys: &VerifyingKeys,
        token: &str,
        now: i64,
    ) -> Result<Vec<Diagnosis>, VerifyError> {
        let parts = Parts::split(token)?;
        let header = parse_header(&parts.header)?;
        let mut report = Vec::with_capacity(Check::ALL.len());
        let mut record = |check: Check, outcome: Option<Result<(), VerifyError>>| {
            report.push(Diagnosis { check, outcome });
        };
        record(Check::Type, Some(self.check_typ(&header)));
        record(Check::Critical, Some(check_crit(&header)));
        let alg = self.check_alg(&header);
        let alg_ok = alg.as_ref().ok().copied();
        record(Check::Algorithm, Some(alg.map(|_| ())));
        let key = alg_ok.map(|alg| {
            keys.lookup(header.kid.as_deref(), alg)
                .and_then(|key| check_key_alg(key, alg).map(|()| key))
        });
        let key_ok = key.as_ref().and_then(|k| k.as_ref().ok()).copied();
        record(Check::Key, key.map(|k| k.map(|_| ())));
        record(
            Check::Signature,
            alg_ok
                .zip(key_ok)
                .map(|(alg, key)| check_signature(&parts, alg, key)),
        );
        let claims = match parse_payload(&parts) {
            Ok(claims) => claims,
            Err(e) => {
                record(Check::Issuer, Some(Err(e)));
                for check in [
                    Check::Profile,
                    Check::Audience,
                    Check::Expiry,
                    Check::NotBefore,
                ] {
                    record(check, None);
                }
                return Ok(report);
            }
        };
        record(Check::Issuer, Some(self.check_iss(&claims)));
        record(Check::Profile, Some(self.check_profile(&claims)));
        record(Check::Audience, Some(self.check_audience(&claims)));
        record(Check::Expiry, Some(self.check_expiry(&claims, now)));
        record(Check::NotBefore, Some(self.check_not_before(&claims, now)));
        Ok(report)
    }
}

/// One check of the verifier ([`Verifier::diagnose_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The `typ` header (RFC 9068 §4).
    Type,
    /// No `crit` header (RFC 7515 §4.1.11).
    Critical,
    /// The algorithm allowlist.
    Algorithm,
    /// A published key for `kid`, of the header's algorithm.
    Key,
    /// The signature, with that key.
    Signature,
    /// `iss` (and a payload that parses, with `iss`, `sub`, `aud` and `exp`).
    Issuer,
    /// The RFC 9068 profile's required claims (`iat`, `jti`, `client_id`).
    Profile,
    /// `aud`.
    Audience,
    /// `exp`, with the leeway.
    Expiry,
    /// `nbf`, with the leeway.
    NotBefore,
}

impl Check {
    /// Every check, in the order [`Verifier::diagnose_with`] reports them.
    pub const ALL: [Check; 10] = [
        Check::Type,
        Check::Critical,
        Check::Algorithm,
        Check::Key,
        Check::Signature,
        Check::Issuer,
        Check::Profile,
        Check::Audience,
        Check::Expiry,
        Check::NotBefore,
    ];

    /// A short name: the header member or claim checked (`typ`, `crit`, `alg`, `kid`,
    /// `signature`, `iss`, `profile`, `aud`, `exp`, `nbf`).
    pub fn name(self) -> &'static str {
        match self {
            Check::Type => "typ",
            Check::Critical => "crit",
            Check::Algorithm => "alg",
            Check::Key => "kid",
            Check::Signature => "signature",
            Check::Issuer => "iss",
            Check::Profile => "profile",
            Check::Audience => "aud",
            Check::Expiry => "exp",
            Check::NotBefore => "nbf",
        }
    }
}

/// The outcome of one check: `None` when it could not run because an earlier check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// Which check.
    pub check: Check,
    /// Passed, failed (why), or not run.
    pub outcome: Option<Result<(), VerifyError>>,
}

fn parse_payload(parts: &Parts<'_>) -> Result<Claims, VerifyError> {
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
    claims::parse(&payload)
}

fn parse_header(header: &[u8]) -> Result<Header<'_>, VerifyError> {
    serde_json::from_slice(header)
        .map_err(|_| VerifyError::Malformed("header is not a JSON object with alg"))
}

/// RFC 7515 §4.1.11: extensions this verifier does not understand must make it refuse.
fn check_crit(header: &Header<'_>) -> Result<(), VerifyError> {
    if header.crit.is_some() {
        return Err(VerifyError::CriticalHeader);
    }
    Ok(())
}

/// The key decides the algorithm, not the token (RFC 8725 §3.1): an RS256 header naming an EC
/// key, or any header naming a key of another type, is refused before any crypto.
fn check_key_alg(key: &VerifyingKey, alg: Alg) -> Result<(), VerifyError> {
    if key.alg != alg {
        return Err(VerifyError::KeyAlgorithmMismatch {
            kid: key.kid.clone().unwrap_or_default(),
            key: key.alg,
            header: alg,
        });
    }
    Ok(())
}

fn check_signature(parts: &Parts<'_>, alg: Alg, key: &VerifyingKey) -> Result<(), VerifyError> {
    let valid = jsonwebtoken::crypto::verify(
        parts.signature,
        parts.message.as_bytes(),
        &key.decoding,
        alg.jwt(),
    )
    .map_err(|_| VerifyError::Malformed("signature is not base64url"))?;
    if !valid {
        return Err(VerifyError::BadSignature);
    }
    Ok(())
}

/// RFC 9068 §4: `at+jwt` or `application/at+jwt`, case-insensitively (RFC 7515 §4.1.9).
fn typ_matches(typ: &str, expected: &str) -> bool {
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(expected)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use serde_json::json;

    use super::*;
    use crate::test_keys::TestKey;

    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        verifier: Verifier<()>,
        keys: VerifyingKeys,
        signing: Vec<(String, Alg, EncodingKey)>,
    }

    fn fixture() -> Fixture {
        let mut jwks = Vec::new();
        let mut signing = Vec::new();
        for alg in Alg::ALL {
            let key = TestKey::generate(alg);
            jwks.push(key.jwk);
            signing.push((key.kid, key.alg, key.encoding));
        }
        let keys =
            VerifyingKeys::parse(&serde_json::to_vec(&json!({ "keys": jwks })).unwrap()).unwrap();
        // No key source: verify_with takes the keys directly.
        let verifier = Verifier::new(VerifierConfig::new("https://id.test", "api"), ());
        Fixture {
            verifier,
            keys,
            signing,
        }
    }

    fn claims() -> serde_json::Value {
        json!({"iss":"https://id.test","sub":"u1","aud":"api","exp":NOW + 60,"nbf":NOW,"iat":NOW,"jti":"j","client_id":"c","scope":"read"})
    }

    impl Fixture {
        fn sign(&self, alg: Alg, claims: &serde_json::Value, typ: Option<&str>) -> String {
            let (kid, _, key) = self.signing.iter().find(|(_, a, _)| *a == alg).unwrap();
            let mut header = JwtHeader::new(alg.jwt());
            header.kid = Some(kid.clone());
            header.typ = typ.map(String::from);
            jsonwebtoken::encode(&header, claims, key).unwrap()
        }

        fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
            self.verifier.verify_with(&self.keys, token, now)
        }
    }

    #[test]
    fn valid_tokens_of_both_algorithms_verify() {
        let f = fixture();
        for alg in Alg::ALL {
            let token = f.sign(alg, &claims(), Some("at+jwt"));
            let verified = f.verify(&token, NOW).unwrap();
            assert_eq!(verified.sub, "u1");
            assert!(verified.has_scope("read"));
        }
    }

    /// The failing checks of a diagnosis, by name; `-name` for one that did not run.
    fn failing(report: &[Diagnosis]) -> Vec<String> {
        report
            .iter()
            .filter_map(|d| match &d.outcome {
                Some(Ok(())) => None,
                Some(Err(_)) => Some(d.check.name().to_string()),
                None => Some(format!("-{}", d.check.name())),
            })
            .collect()
    }

    #[test]
    fn a_diagnosis_runs_every_check_and_agrees_with_verify() {
        let f = fixture();
        let good = f.sign(Alg::Es256, &claims(), Some("at+jwt"));
        let report = f.verifier.diagnose_with(&f.keys, &good, NOW).unwrap();
        assert_eq!(report.len(), Check::ALL.len());
        assert_eq!(failing(&report), Vec::<String>::new());

        // Expired and for another audience: both reported, not only the first.
        let mut bad = claims();
        bad["aud"] = json!("other");
        let token = f.sign(Alg::Es256, &bad, Some("at+jwt"));
        let report = f
            .verifier
            .diagnose_with(&f.keys, &token, NOW + 3600)
            .unwrap();
        assert_eq!(failing(&report), ["aud", "exp"]);
        assert!(f.verify(&token, NOW + 3600).is_err());

        // A tampered payload: the signature fails, the claims are still checked.
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut other = claims();
        other["sub"] = json!("mallory");
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let tampered = format!("{head}.{payload}.{sig}");
        let report = f.verifier.diagnose_with(&f.keys, &tampered, NOW).unwrap();
        assert_eq!(failing(&report), ["signature"]);
        assert_eq!(
            f.verify(&tampered, NOW).unwrap_err(),
            VerifyError::BadSignature
        );

        // An unknown kid: no key, so the signature is not checked.
        let empty = VerifyingKeys::parse(br#"{"keys":[]}"#).unwrap();
        let report = f.verifier.diagnose_with(&empty, &good, NOW).unwrap();
        assert_eq!(failing(&report), ["kid", "-signature"]);

        // Not a JWS at all: an error, as for verify.
        assert!(matches!(
            f.verifier.diagnose_with(&f.keys, "abc", NOW),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn typ_must_be_at_jwt() {
        let f = fixture();
        for ok in ["at+jwt", "application/at+jwt", "AT+JWT"] {
            assert!(
                f.verify(&f.sign(Alg::Es256, &claims(), Some(ok)), NOW)
                    .is_ok(),
                "{ok}"
            );
        }
        assert_eq!(
            f.verify(&f.sign(Alg::Es256, &claims(), Some("JWT")), NOW),
            Err(VerifyError::WrongType {
                found: Some("JWT".into())
            })
        );
        assert_eq!(
            f.verify(&f.sign(Alg::Es256, &claims(), None), NOW),
            Err(VerifyError::WrongType { found: None })
        );
    }

    #[test]
    fn time_claims_are_checked_with_leeway_at_the_given_time() {
        let f = fixture();
        let token = f.sign(Alg::Es256, &claims(), Some("at+jwt"));
        assert!(f.verify(&token, NOW + 60 + 4).is_ok(), "within leeway");
        assert!(matches!(
            f.verify(&token, NOW + 60 + 5),
            Err(VerifyError::Expired { .. })
        ));
        assert!(f.verify(&token, NOW - 5).is_ok(), "within leeway");
        assert!(matches!(
            f.verify(&token, NOW - 6),
            Err(VerifyError::NotYetValid { .. })
        ));
        // `exp` near the end of time neither overflows nor panics with the leeway added.
        let mut far = claims();
        far["exp"] = i64::MAX.into();
        assert!(
            f.verify(&f.sign(Alg::Es256, &far, Some("at+jwt")), NOW)
                .is_ok()
        );
        far["exp"] = i64::MIN.into();
        assert!(matches!(
            f.verify(&f.sign(Alg::Es256, &far, Some("at+jwt")), NOW),
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn nbf_is_optional_unless_required() {
        let mut f = fixture();
        let mut no_nbf = claims();
        no_nbf.as_object_mut().unwrap().remove("nbf");
        let token = f.sign(Alg::Es256, &no_nbf, Some("at+jwt"));
        assert!(
            f.verify(&token, NOW).is_ok(),
            "RFC 9068 does not require nbf"
        );
        let mut config = f.verifier.config().clone();
        config.require_nbf = true;
        f.verifier = Verifier::new(config, ());
        assert_eq!(f.verify(&token, NOW), Err(VerifyError::MissingClaim("nbf")));
    }

    #[test]
    fn the_at_jwt_profile_requires_iat_jti_and_client_id() {
        let mut f = fixture();
        for claim in ["iat", "jti", "client_id"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(claim);
            let token = f.sign(Alg::Es256, &c, Some("at+jwt"));
            assert_eq!(f.verify(&token, NOW), Err(VerifyError::MissingClaim(claim)));
        }
        // Without the profile (an issuer that does not type its tokens), they are optional.
        let mut config = f.verifier.config().clone();
        config.typ = None;
        f.verifier = Verifier::new(config, ());
        let mut bare = claims();
        for claim in ["iat", "jti", "client_id"] {
            bare.as_object_mut().unwrap().remove(claim);
        }
        assert!(f.verify(&f.sign(Alg::Es256, &bare, None), NOW).is_ok());
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let f = fixture();
        let mut c = claims();
        c["iss"] = "https://evil.test".into();
        assert!(matches!(
            f.verify(&f.sign(Alg::Es256, &c, Some("at+jwt")), NOW),
            Err(VerifyError::WrongIssuer { .. })
        ));
        let mut c = claims();
        c["aud"] = json!(["other", "another"]);
        assert!(matches!(
            f.verify(&f.sign(Alg::Es256, &c, Some("at+jwt")), NOW),
            Err(VerifyError::WrongAudience { .. })
        ));
        c["aud"] = json!(["other", "api"]);
        assert!(
            f.verify(&f.sign(Alg::Es256, &c, Some("at+jwt")), NOW)
                .is_ok()
        );
        // Compared exactly: a trailing slash makes another issuer.
        let mut c = claims();
        c["iss"] = "https://id.test/".into();
        assert!(matches!(
            f.verify(&f.sign(Alg::Es256, &c, Some("at+jwt")), NOW),
            Err(VerifyError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let f = fixture();
        let good = f.sign(Alg::Es256, &claims(), Some("at+jwt"));
        let (ec_kid, _, _) = &f.signing[0];
        let payload = good.split('.').nth(1).unwrap();
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());

        // alg none, empty signature
        let none = format!(
            "{}.{payload}.",
            b64(json!({"alg":"none","typ":"at+jwt","kid":ec_kid}))
        );
        assert_eq!(
            f.verify(&none, NOW),
            Err(VerifyError::AlgorithmNotAllowed("none".into()))
        );

        // HS256 keyed with the public key bytes (the classic confusion)
        let jwks = serde_json::to_vec(&json!({"kid": ec_kid})).unwrap();
        let mut hs = JwtHeader::new(jsonwebtoken::Algorithm::HS256);
        hs.typ = Some("at+jwt".into());
        hs.kid = Some(ec_kid.clone());
        let hs = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(&jwks)).unwrap();
        assert_eq!(
            f.verify(&hs, NOW),
            Err(VerifyError::AlgorithmNotAllowed("HS256".into()))
        );

        // RS256 header on the EC key
        let rs = format!(
            "{}.{payload}.{}",
            b64(json!({"alg":"RS256","typ":"at+jwt","kid":ec_kid})),
            good.rsplit('.').next().unwrap()
        );
        assert!(matches!(
            f.verify(&rs, NOW),
            Err(VerifyError::KeyAlgorithmMismatch {
                key: Alg::Es256,
                header: Alg::Rs256,
                ..
            })
        ));

        // crit extensions
        let crit = format!(
            "{}.{payload}.{}",
            b64(json!({"alg":"ES256","typ":"at+jwt","kid":ec_kid,"crit":["exp"]})),
            good.rsplit('.').next().unwrap()
        );
        assert_eq!(f.verify(&crit, NOW), Err(VerifyError::CriticalHeader));
    }

    #[test]
    fn an_algorithm_outside_the_allowlist_is_refused_even_if_supported() {
        let mut f = fixture();
        let mut config = f.verifier.config().clone();
        config.algorithms = vec![Alg::Es256];
        f.verifier = Verifier::new(config, ());
        assert_eq!(
            f.verify(&f.sign(Alg::Rs256, &claims(), Some("at+jwt")), NOW),
            Err(VerifyError::AlgorithmNotAllowed("RS256".into()))
        );
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let f = fixture();
        let token = f.sign(Alg::Rs256, &claims(), Some("at+jwt"));
        let mut c = claims();
        c["sub"] = "admin".into();
        let other_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &other_payload;
        assert_eq!(
            f.verify(&parts.join("."), NOW),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            f.verify("a.b", NOW),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            f.verify("a.b.c.d", NOW),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_fixed_key_set_is_a_key_source() {
        let f = fixture();
        let verifier = Verifier::new(f.verifier.config().clone(), f.keys.clone());
        let token = f.sign(Alg::Rs256, &claims(), Some("at+jwt"));
        assert_eq!(verifier.verify(&token, NOW).await.unwrap().sub, "u1");
        assert!(matches!(
            verifier.verify(&token, NOW + 3600).await,
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn the_leeway_is_capped() {
        let mut config = VerifierConfig::new("https://id.test", "api");
        config.leeway = 3600;
        assert_eq!(Verifier::new(config, ()).config().leeway, MAX_LEEWAY);
    }

    #[test]
    fn unknown_kids_are_named() {
        let f = fixture();
        let (_, _, key) = &f.signing[0];
        let mut header = JwtHeader::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("nope".into());
        let token = jsonwebtoken::encode(&header, &claims(), key).unwrap();
        assert_eq!(
            f.verify(&token, NOW),
            Err(VerifyError::UnknownKid("nope".into()))
        );
    }
}
