//! An immutable snapshot of the key set: parsed keys, the serialised JWKS and its ETag. Built once
//! per key-set change and shared lock-free; the request path never parses a key.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};
use stamp_verify::{ACCESS_TOKEN_TYP, VerifyingKeys};

use super::manager::KeyError;
use super::{Alg, KeyMeta, KeyState, Manifest, PrivateKey, PublicJwk, Signer, thumbprint};

/// One published key, ready to sign (when active) and verify.
pub struct LoadedKey {
    pub meta: KeyMeta,
    /// Kept so that the next snapshot reuses it instead of re-reading the store.
    pub private: Arc<PrivateKey>,
    pub public: PublicJwk,
    pub encoding: EncodingKey,
    /// Signs access tokens (`typ: at+jwt`) with the key pair parsed once.
    pub signer: Signer,
}

/// The key set at one generation.
pub struct KeySet {
    manifest: Manifest,
    keys: Vec<LoadedKey>,
    jwks: Arc<[u8]>,
    etag: String,
    /// The published keys as the verifier uses them, parsed from [`KeySet::jwks`] once.
    verifying: VerifyingKeys,
}

impl KeySet {
    /// Builds a snapshot from a manifest and the private keys of its published entries. Checks
    /// that each key's thumbprint is its `kid` and that it signs a token its public half verifies.
    pub fn build(
        manifest: Manifest,
        keys: Vec<(KeyMeta, Arc<PrivateKey>, String)>,
    ) -> Result<KeySet, KeyError> {
        let mut loaded = Vec::with_capacity(keys.len());
        for (meta, private, origin) in keys {
            if private.alg() != meta.alg {
                return Err(KeyError::Corrupt {
                    origin,
                    reason: format!("manifest says {}, key is {}", meta.alg, private.alg()),
                });
            }
            let public = private.public_jwk();
            let kid = thumbprint(&public);
            if kid != meta.kid {
                return Err(KeyError::Corrupt {
                    origin,
                    reason: format!("thumbprint {kid} does not match kid {}", meta.kid),
                });
            }
            let encoding = private.encoding_key().map_err(|e| KeyError::Corrupt {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            let decoding = public.decoding_key().map_err(|e| KeyError::Corrupt {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            let signer = Signer::new(&private, &meta.kid, ACCESS_TOKEN_TYP).map_err(|e| {
                KeyError::Corrupt {
                    origin: origin.clone(),
                    reason: e.to_string(),
                }
            })?;
            self_test(meta.alg, &encoding, &signer, &decoding)
                .map_err(|reason| KeyError::SelfTest { origin, reason })?;
            loaded.push(LoadedKey {
                meta,
                private,
                public,
                encoding,
                signer,
            });
        }
        // Stable order: newest first, so the JWKS bytes depend only on the key set.
        loaded.sort_by(|a, b| {
            b.meta
                .created_at
                .cmp(&a.meta.created_at)
                .then_with(|| a.meta.kid.cmp(&b.meta.kid))
        });
        let jwks = jwks_bytes(&loaded);
        let etag = strong_etag(&jwks);
        // The issuer's own online checks verify with the keys exactly as resource servers see
        // them: parsed from the published bytes by the same code.
        let verifying = VerifyingKeys::parse(&jwks).map_err(|reason| KeyError::Corrupt {
            origin: "the published JWKS".into(),
            reason,
        })?;
        if let Some(ignored) = verifying.ignored().first() {
            return Err(KeyError::Corrupt {
                origin: format!("published key {:?}", ignored.kid),
                reason: ignored.reason.clone(),
            });
        }
        Ok(KeySet {
            manifest,
            keys: loaded,
            jwks: jwks.into(),
            etag,
            verifying,
        })
    }

    /// The manifest this snapshot was built from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Published keys, newest first.
    pub fn keys(&self) -> &[LoadedKey] {
        &self.keys
    }

    /// The key that signs new tokens of `alg`.
    pub fn active(&self, alg: Alg) -> Option<&LoadedKey> {
        self.keys
            .iter()
            .find(|k| k.meta.alg == alg && k.meta.state == KeyState::Active)
    }

    /// A published key by `kid`.
    pub fn find(&self, kid: &str) -> Option<&LoadedKey> {
        self.keys.iter().find(|k| k.meta.kid == kid)
    }

    /// `{"keys":[…]}`, serialised once.
    pub fn jwks(&self) -> &Arc<[u8]> {
        &self.jwks
    }

    /// The published keys parsed for verification (built once per key-set change).
    pub fn verifying_keys(&self) -> &VerifyingKeys {
        &self.verifying
    }

    /// Strong ETag of [`KeySet::jwks`], quoted.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

fn jwks_bytes(keys: &[LoadedKey]) -> Vec<u8> {
    let keys: Vec<_> = keys
        .iter()
        .map(|k| k.public.to_json_value(&k.meta.kid))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default()
}

/// Signs and verifies a throw-away token: a broken crypto build or a key whose halves do not match
/// stops start-up instead of producing tokens nobody can verify.
/// Both signing paths are tested: the access-token signer and jsonwebtoken's.
fn self_test(
    alg: Alg,
    encoding: &EncodingKey,
    signer: &Signer,
    decoding: &DecodingKey,
) -> Result<(), String> {
    let claims = serde_json::json!({ "sub": "self-test", "exp": 4_102_444_800u64 });
    let theirs = jsonwebtoken::encode(&Header::new(alg.jwt()), &claims, encoding)
        .map_err(|e| format!("sign: {e}"))?;
    let ours = signer.sign(&claims).map_err(|e| format!("sign: {e}"))?;
    let mut validation = Validation::new(alg.jwt());
    validation.validate_aud = false;
    for token in [theirs, ours] {
        jsonwebtoken::decode::<serde_json::Value>(&token, decoding, &validation)
            .map_err(|e| format!("verify: {e}"))?;
    }
    Ok(())
}

/// A strong `ETag` for `bytes`: a quoted base64url digest (144 bits of SHA-256), the same
/// bytes giving the same tag in every process.
pub fn strong_etag(bytes: &[u8]) -> String {
    format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(&Sha256::digest(bytes)[..18])
    )
}
