//! A fetched JWK set, parsed once into verification keys. Keys this verifier must not use (HMAC
//! `oct` keys, encryption keys, unsupported curves, short RSA moduli, published private keys) are
//! set aside with the reason, never turned into a key.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::{Alg, VerifyError};

/// One public key ready to verify signatures of exactly one algorithm.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    /// The key's `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// The only algorithm this key verifies: from its `kty`/`crv`, and equal to its `alg` member
    /// when the JWK has one.
    pub alg: Alg,
    pub(crate) decoding: DecodingKey,
}

/// A JWK of the set that was not turned into a key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredKey {
    /// The JWK's `kid`, if it has one.
    pub kid: Option<String>,
    /// Why it cannot verify anything.
    pub reason: String,
}

/// The usable keys of one JWK set.
#[derive(Clone, Debug, Default)]
pub struct VerifyingKeys {
    keys: Vec<Arc<VerifyingKey>>,
    ignored: Vec<IgnoredKey>,
}

/// Smallest RSA modulus accepted (RFC 7518 §3.3 requires 2048 bits).
const MIN_RSA_BYTES: usize = 256;

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
}

impl VerifyingKeys {
    /// Parses `{"keys":[…]}`. The set itself must be well-formed; a key inside it that cannot be
    /// used is listed in [`VerifyingKeys::ignored`] instead of failing the whole set, so that an
    /// issuer publishing, say, an extra encryption key does not stop verification.
    pub fn parse(json: &[u8]) -> Result<VerifyingKeys, String> {
        let set: RawSet = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let mut out = VerifyingKeys::default();
        for value in set.keys {
            let kid = value.get("kid").and_then(|k| k.as_str()).map(String::from);
            let parsed = serde_json::from_value::<RawJwk>(value)
                .map_err(|e| e.to_string())
                .and_then(verifying_key);
            let parsed = parsed.and_then(|key| {
                // A second key under a known kid would make lookups ambiguous.
                match key.kid.as_deref() {
                    Some(k) if out.find(k).is_some() => Err("duplicate kid".to_string()),
                    _ => Ok(key),
                }
            });
            match parsed {
                Ok(key) => out.keys.push(Arc::new(key)),
                Err(reason) => out.ignored.push(IgnoredKey { kid, reason }),
            }
        }
        Ok(out)
    }

    /// The usable keys, in the order of the set.
    pub fn keys(&self) -> &[Arc<VerifyingKey>] {
        &self.keys
    }

    /// The keys that were set aside, with reasons.
    pub fn ignored(&self) -> &[IgnoredKey] {
        &self.ignored
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// For a token without `kid`: the key of `alg`, if it is the only one.
    pub fn only(&self, alg: Alg) -> Option<&Arc<VerifyingKey>> {
        let mut of_alg = self.keys.iter().filter(|k| k.alg == alg);
        match (of_alg.next(), of_alg.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    /// The key for a token with this `kid` ([`VerifyingKeys::find`]) or, without one, the only
    /// key of `alg` ([`VerifyingKeys::only`]); the error names what is missing.
    pub fn lookup(&self, kid: Option<&str>, alg: Alg) -> Result<&Arc<VerifyingKey>, VerifyError> {
        match kid {
            Some(kid) => self
                .find(kid)
                .ok_or_else(|| VerifyError::UnknownKid(kid.to_string())),
            None => self.only(alg).ok_or(VerifyError::MissingKid(alg)),
        }
    }
}

fn verifying_key(jwk: RawJwk) -> Result<VerifyingKey, String> {
    if jwk.d.is_some() {
        return Err("the JWK contains a private key; refusing to use a leaked key".into());
    }
    if let Some(use_) = jwk.use_.as_deref().filter(|u| *u != "sig") {
        return Err(format!("use is {use_:?}, not \"sig\""));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|o| o == "verify")
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let (alg, decoding) = match jwk.kty.as_str() {
        "RSA" => {
            let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                return Err("RSA key without n or e".into());
            };
            let modulus = URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| "n is not base64url".to_string())?;
            let exponent = URL_SAFE_NO_PAD
                .decode(e)
                .map_err(|_| "e is not base64url".to_string())?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_BYTES {
                return Err(format!(
                    "RSA modulus of {} bits is below 2048",
                    significant * 8
                ));
            }
            (
                Alg::Rs256,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            )
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(format!("curve {:?} is not supported", jwk.crv));
            }
            let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
                return Err("EC key without x or y".into());
            };
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            for (name, coordinate) in [("x", x), ("y", y)] {
                let bytes = URL_SAFE_NO_PAD
                    .decode(coordinate)
                    .map_err(|_| format!("{name} is not base64url"))?;
                if bytes.len() != 32 {
                    return Err(format!("{name} is {} bytes, not 32", bytes.len()));
                }
                point.extend_from_slice(&bytes);
            }
            let on_curve = aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                &point,
            );
            if on_curve.is_err() {
                return Err("the point is not on P-256".into());
            }
            (Alg::Es256, DecodingKey::from_ec_der(&point))
        }
        other => return Err(format!("kty {other:?} is not allowed")),
    };
    if let Some(declared) = jwk.alg.as_deref()
        && declared != alg.as_str()
    {
        return Err(format!(
            "alg {declared:?} is not allowed for a {} key",
            jwk.kty
        ));
    }
    Ok(VerifyingKey {
        kid: jwk.kid,
        alg,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::TestKey;

    fn jwks(keys: &[serde_json::Value]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    fn ec_jwk() -> (serde_json::Value, String) {
        let key = TestKey::generate(Alg::Es256);
        (key.jwk.clone(), key.kid)
    }

    #[test]
    fn the_issuers_own_jwks_parses_into_keys() {
        let (ec, kid) = ec_jwk();
        let keys = VerifyingKeys::parse(&jwks(&[ec])).unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert_eq!(keys.find(&kid).unwrap().alg, Alg::Es256);
        assert!(keys.ignored().is_empty());
    }

    #[test]
    fn unusable_keys_are_set_aside_with_reasons() {
        let (ec, kid) = ec_jwk();
        let mut hs = serde_json::json!({"kty":"oct","kid":"h","k":"c2VjcmV0"});
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut mislabelled = ec.clone();
        mislabelled["alg"] = "RS256".into();
        mislabelled["kid"] = "m".into();
        let mut private = ec.clone();
        private["d"] = "AAAA".into();
        private["kid"] = "p".into();
        let mut off_curve = ec.clone();
        off_curve["y"] = URL_SAFE_NO_PAD.encode([7u8; 32]).into();
        off_curve["kid"] = "o".into();
        let short_rsa = serde_json::json!({"kty":"RSA","kid":"r","n": URL_SAFE_NO_PAD.encode([0xff; 128]),"e":"AQAB"});
        hs["alg"] = "HS256".into();
        let keys = VerifyingKeys::parse(&jwks(&[
            ec.clone(),
            hs,
            enc,
            mislabelled,
            private,
            off_curve,
            short_rsa,
            ec,
        ]))
        .unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert!(keys.find(&kid).is_some());
        let reasons: Vec<_> = keys.ignored().iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(reasons.len(), 7, "{reasons:?}");
        assert!(reasons[0].contains("oct"));
        assert!(reasons[1].contains("enc"));
        assert!(reasons[2].contains("RS256"));
        assert!(reasons[3].contains("private"));
        assert!(reasons[4].contains("P-256"));
        assert!(reasons[5].contains("1024"));
        assert!(reasons[6].contains("duplicate"));
    }

    #[test]
    fn a_kidless_token_needs_a_single_key_of_its_algorithm() {
        let (a, _) = ec_jwk();
        let (b, _) = ec_jwk();
        let one = VerifyingKeys::parse(&jwks(std::slice::from_ref(&a))).unwrap();
        assert!(one.only(Alg::Es256).is_some());
        assert!(one.only(Alg::Rs256).is_none());
        let two = VerifyingKeys::parse(&jwks(&[a, b])).unwrap();
        assert!(two.only(Alg::Es256).is_none());
    }

    #[test]
    fn a_document_that_is_not_a_set_is_an_error() {
        assert!(VerifyingKeys::parse(b"{}").is_err());
        assert!(VerifyingKeys::parse(b"[1]").is_err());
    }
}
