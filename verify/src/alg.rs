//! The signing algorithms this issuer allows: an allowlist of two, never `none` or HMAC.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An asymmetric JWS algorithm this issuer can sign with (RFC 8725 §3.1: an explicit allowlist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Alg {
    /// Every supported algorithm, in the order discovery lists them.
    pub const ALL: [Alg; 2] = [Alg::Es256, Alg::Rs256];

    /// The JOSE name (`ES256`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// The matching jsonwebtoken algorithm.
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::Es256 => jsonwebtoken::Algorithm::ES256,
            Alg::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name outside the allowlist.
#[derive(Debug, thiserror::Error)]
#[error("unsupported algorithm `{0}`")]
pub struct UnsupportedAlg(pub String);

impl FromStr for Alg {
    type Err = UnsupportedAlg;

    /// Exact, case-sensitive JOSE names only: `es256` is not `ES256` in any JOSE library.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(Alg::Es256),
            "RS256" => Ok(Alg::Rs256),
            other => Err(UnsupportedAlg(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_asymmetric_algorithms_parse() {
        assert_eq!("ES256".parse::<Alg>().unwrap(), Alg::Es256);
        assert_eq!("RS256".parse::<Alg>().unwrap(), Alg::Rs256);
        for bad in ["none", "HS256", "es256", "PS256", "ES384", ""] {
            assert!(bad.parse::<Alg>().is_err(), "{bad} must be refused");
        }
    }
}
