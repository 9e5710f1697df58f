//! Signing JWTs with key pairs parsed once per key-set change.
//!
//! Written by hand because jsonwebtoken's `encode` re-parses the private key on every call
//! (measured: its aws-lc-rs RS256 path reaches 39% of OpenSSL's signing rate, a key parsed once
//! reaches 96%). This is the one piece of JWS that is ours: the header is serialised once per key,
//! the claims with serde_json, both base64url-encoded exactly as jsonwebtoken does, and signed
//! with the same aws-lc-rs primitives jsonwebtoken uses. Tests check that the tokens are
//! byte-identical to jsonwebtoken's (RS256 signatures are deterministic) and that jsonwebtoken
//! verifies them.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::Serialize;

use super::{Alg, PrivateKey};

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed key pair plus its pre-encoded JWS header.
pub struct Signer {
    pair: Pair,
    /// base64url(header JSON) followed by '.', ready to prefix every token.
    header_prefix: String,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<hidden>)")
    }
}

/// A signing failure (the key or the crypto library, never the caller's input).
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub String);

impl Signer {
    /// Parses `key` into an aws-lc-rs key pair and serialises the header `{typ, alg, kid}`.
    pub fn new(key: &PrivateKey, kid: &str, typ: &str) -> Result<Signer, SignError> {
        let alg = key.alg();
        let pair = match key {
            PrivateKey::Ec(_) => {
                let der = key.pkcs8_der().map_err(|e| SignError(e.to_string()))?;
                Pair::Ec(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map_err(|e| SignError(e.to_string()))?,
                )
            }
            PrivateKey::Rsa(_) => {
                let der = key.pkcs8_der().map_err(|e| SignError(e.to_string()))?;
                Pair::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(|e| SignError(e.to_string()))?)
            }
        };
        let mut header = Header::new(alg.jwt());
        header.typ = Some(typ.to_string());
        header.kid = Some(kid.to_string());
        let json = serde_json::to_vec(&header).map_err(|e| SignError(e.to_string()))?;
        let mut header_prefix = URL_SAFE_NO_PAD.encode(json);
        header_prefix.push('.');
        Ok(Signer {
            pair,
            header_prefix,
            rng: SystemRandom::new(),
        })
    }

    /// The algorithm this signer produces.
    pub fn alg(&self) -> Alg {
        match self.pair {
            Pair::Ec(_) => Alg::Es256,
            Pair::Rsa(_) => Alg::Rs256,
        }
    }

    /// `header.payload.signature` for `claims`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let payload = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
        // header + payload + signature (RSA-4096: 512 bytes, 683 base64 characters) + dots.
        let mut token =
            String::with_capacity(self.header_prefix.len() + payload.len() * 4 / 3 + 700);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.pair {
            Pair::Ec(pair) => {
                let sig = pair
                    .sign(&self.rng, token.as_bytes())
                    .map_err(|e| SignError(e.to_string()))?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
                return Ok(token);
            }
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut sig)
                    .map_err(|e| SignError(e.to_string()))?;
                sig
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Validation, decode, encode};

    use super::*;
    use crate::keys::thumbprint;

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss": "https://id.test", "sub": "u1", "aud": "api", "exp": 4_102_444_800u64, "scope": "a b"})
    }

    fn header(alg: Alg, kid: &str) -> Header {
        let mut header = Header::new(alg.jwt());
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.into());
        header
    }

    #[test]
    fn rs256_tokens_are_byte_identical_to_jsonwebtoken() {
        let key = PrivateKey::generate(Alg::Rs256, 2048).unwrap();
        let kid = thumbprint(&key.public_jwk());
        let ours = Signer::new(&key, &kid, "at+jwt")
            .unwrap()
            .sign(&claims())
            .unwrap();
        let theirs = encode(
            &header(Alg::Rs256, &kid),
            &claims(),
            &key.encoding_key().unwrap(),
        )
        .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn es256_tokens_match_jsonwebtoken_and_verify() {
        let key = PrivateKey::generate(Alg::Es256, 2048).unwrap();
        let kid = thumbprint(&key.public_jwk());
        let ours = Signer::new(&key, &kid, "at+jwt")
            .unwrap()
            .sign(&claims())
            .unwrap();
        let theirs = encode(
            &header(Alg::Es256, &kid),
            &claims(),
            &key.encoding_key().unwrap(),
        )
        .unwrap();
        // ECDSA signatures are randomised: header and payload must match, the signature verify.
        let prefix = |t: &str| t.rsplit_once('.').unwrap().0.to_string();
        assert_eq!(prefix(&ours), prefix(&theirs));
        assert_eq!(
            ours.rsplit_once('.').unwrap().1.len(),
            86,
            "64-byte fixed r||s"
        );
        let mut validation = Validation::new(Alg::Es256.jwt());
        validation.set_audience(&["api"]);
        let decoded = decode::<serde_json::Value>(
            &ours,
            &key.public_jwk().decoding_key().unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims, claims());
        assert_eq!(decoded.header.kid.as_deref(), Some(kid.as_str()));
    }
}
