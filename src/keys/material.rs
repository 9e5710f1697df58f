//! Private key material: generation (`rsa`, `p256`), PKCS#8 PEM encoding, public JWK extraction.
//!
//! The `rsa` crate generates and encodes only; signing goes through jsonwebtoken's aws-lc-rs
//! backend, whose private-key operations are constant-time.

use std::fmt;

use p256::elliptic_curve::Generate as _;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand::rngs::SysRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use zeroize::Zeroizing;

use super::{Alg, PublicJwk};

/// A private signing key. Never `Serialize`; its `Debug` shows the algorithm only.
pub enum PrivateKey {
    Rsa(Box<rsa::PrivateKey>),
    Ec(p256::SecretKey),
}

/// The underlying library error. `rsa`, `p256` and their `pkcs8`/`pkcs1` layers each have their
/// own error type; they are kept whole (as the source) rather than flattened into text.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why key material could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaterialError {
    /// The RNG or the key-generation routine failed.
    #[error("{alg} key generation failed")]
    Generate {
        alg: Alg,
        #[source]
        source: Cause,
    },
    /// The PEM text is not a valid PKCS#8 private key of that algorithm (or fails RSA's
    /// consistency checks).
    #[error("not a PKCS#8 {alg} private key")]
    Parse {
        alg: Alg,
        #[source]
        source: Cause,
    },
    /// The key could not be written in the requested encoding.
    #[error("{alg} key encoding failed")]
    Encode {
        alg: Alg,
        #[source]
        source: Cause,
    },
}

impl MaterialError {
    fn generate(alg: Alg) -> impl FnOnce(Cause) -> MaterialError {
        move |source| MaterialError::Generate { alg, source }
    }

    fn parse(alg: Alg) -> impl FnOnce(Cause) -> MaterialError {
        move |source| MaterialError::Parse { alg, source }
    }

    fn encode(alg: Alg) -> impl FnOnce(Cause) -> MaterialError {
        move |source| MaterialError::Encode { alg, source }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <hidden>)", self.alg())
    }
}

impl PrivateKey {
    /// Generates a fresh key from the operating system's RNG. CPU-heavy for RSA (hundreds of
    /// milliseconds to seconds): call it from a blocking thread, never on the async runtime.
    pub fn generate(alg: Alg, rsa_bits: usize) -> Result<PrivateKey, MaterialError> {
        match alg {
            Alg::Es256 => p256::SecretKey::try_generate_from_rng(&mut SysRng)
                .map(PrivateKey::Ec)
                .map_err(|e| MaterialError::generate(alg)(e.into())),
            Alg::Rs256 => rsa::PrivateKey::new(&mut SysRng, rsa_bits)
                .map(|k| PrivateKey::Rsa(Box::new(k)))
                .map_err(|e| MaterialError::generate(alg)(e.into())),
        }
    }

    /// Reads a PKCS#8 PEM private key of the given algorithm.
    pub fn from_pkcs8_pem(alg: Alg, pem: &str) -> Result<PrivateKey, MaterialError> {
        match alg {
            Alg::Es256 => p256::SecretKey::from_pkcs8_pem(pem)
                .map(PrivateKey::Ec)
                .map_err(|e| MaterialError::parse(alg)(e.into())),
            Alg::Rs256 => {
                let key = rsa::PrivateKey::from_pkcs8_pem(pem)
                    .map_err(|e| MaterialError::parse(alg)(e.into()))?;
                key.validate()
                    .map_err(|e| MaterialError::parse(alg)(e.into()))?;
                Ok(PrivateKey::Rsa(Box::new(key)))
            }
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        match self {
            PrivateKey::Rsa(_) => Alg::Rs256,
            PrivateKey::Ec(_) => Alg::Es256,
        }
    }

    /// PKCS#8 PEM, zeroised when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, MaterialError> {
        let pem = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::Ec(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        pem.map_err(|e| MaterialError::encode(self.alg())(e.into()))
    }

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> PublicJwk {
        match self {
            PrivateKey::Rsa(k) => PublicJwk::Rsa {
                n: k.n_bytes().into_vec(),
                e: k.e_bytes().into_vec(),
            },
            PrivateKey::Ec(k) => {
                let point = k.public_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                // An uncompressed SEC1 point is 0x04 || x (32 bytes) || y (32 bytes): fixed-width,
                // so the coordinates keep their leading zeros as RFC 7518 §6.2.1.2 requires.
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                if bytes.len() == 65 {
                    x.copy_from_slice(&bytes[1..33]);
                    y.copy_from_slice(&bytes[33..65]);
                }
                PublicJwk::Ec { x, y }
            }
        }
    }

    /// PKCS#8 DER, zeroised when dropped.
    pub fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, MaterialError> {
        let doc = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            PrivateKey::Ec(k) => k.to_pkcs8_der(),
        };
        doc.map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|e| MaterialError::encode(self.alg())(e.into()))
    }

    /// The signing key for jsonwebtoken's aws-lc-rs backend (PKCS#1 DER for RSA, PKCS#8 DER
    /// for EC, the forms that backend parses).
    pub fn encoding_key(&self) -> Result<jsonwebtoken::EncodingKey, MaterialError> {
        match self {
            PrivateKey::Rsa(k) => {
                let der = k
                    .to_pkcs1_der()
                    .map_err(|e| MaterialError::encode(self.alg())(e.into()))?;
                Ok(jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()))
            }
            PrivateKey::Ec(k) => {
                let der = k
                    .to_pkcs8_der()
                    .map_err(|e| MaterialError::encode(self.alg())(e.into()))?;
                Ok(jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_key_round_trips_through_pem() {
        let key = PrivateKey::generate(Alg::Es256, 2048).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----")));
        let again = PrivateKey::from_pkcs8_pem(Alg::Es256, &pem).unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
    }

    #[test]
    fn rsa_key_round_trips_through_pem() {
        let key = PrivateKey::generate(Alg::Rs256, 2048).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let again = PrivateKey::from_pkcs8_pem(Alg::Rs256, &pem).unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
        match key.public_jwk() {
            PublicJwk::Rsa { n, e } => {
                assert_eq!(n.len(), 256);
                assert_eq!(e, [1, 0, 1]);
            }
            PublicJwk::Ec { .. } => panic!("RSA key gave an EC JWK"),
        }
    }

    #[test]
    fn an_ec_pem_is_not_an_rsa_key() {
        let pem = PrivateKey::generate(Alg::Es256, 2048)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        assert!(PrivateKey::from_pkcs8_pem(Alg::Rs256, &pem).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = PrivateKey::generate(Alg::Es256, 2048).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(ES256, <hidden>)");
    }
}
