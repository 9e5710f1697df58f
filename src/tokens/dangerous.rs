//! Reading a JWT without verifying it. Named `dangerous` so that every caller reads the warning:
//! anyone can read a JWT, nobody can forge one, and nothing read here is to be trusted.
//!
//! Not `jsonwebtoken::dangerous::insecure_decode`: that parses the header into jsonwebtoken's
//! `Header`, which refuses `alg: none` and algorithms it does not know, exactly the tokens an
//! operator wants to look at, and it accepts a token of four parts. `stamp token decode` shows
//! any header as sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The header and claims of a compact JWS, base64url-decoded and parsed as JSON, unverified.
#[derive(Debug)]
pub struct Unverified {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
}

/// Why a string is not a readable JWT.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("a JWT has three dot-separated parts")]
    Shape,
    #[error("the {0} is not base64url")]
    Base64(&'static str),
    #[error("the {0} is not a JSON object")]
    Json(&'static str),
}

/// Decodes `token` without checking its signature or any claim.
pub fn decode_unverified(token: &str) -> Result<Unverified, DecodeError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DecodeError::Shape);
    };
    Ok(Unverified {
        header: part(header, "header")?,
        claims: part(claims, "payload")?,
    })
}

fn part(b64: &str, name: &'static str) -> Result<serde_json::Value, DecodeError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| DecodeError::Base64(name))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| DecodeError::Json(name))?;
    if !value.is_object() {
        return Err(DecodeError::Json(name));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_header_and_claims() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let jwt = decode_unverified(token).unwrap();
        assert_eq!(jwt.header["alg"], "ES256");
        assert_eq!(jwt.claims["sub"], "a");
    }

    #[test]
    fn decodes_tokens_of_any_algorithm() {
        // {"alg":"none"}.{"sub":"a"}. : unsigned, and shown as sent.
        let jwt = decode_unverified("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.").unwrap();
        assert_eq!(jwt.header["alg"], "none");
        assert_eq!(jwt.claims["sub"], "a");
    }

    #[test]
    fn refuses_what_is_not_a_jwt() {
        assert!(matches!(decode_unverified("a.b"), Err(DecodeError::Shape)));
        assert!(matches!(
            decode_unverified("a.b.c.d"),
            Err(DecodeError::Shape)
        ));
        assert!(matches!(
            decode_unverified("!!.e30.c2ln"),
            Err(DecodeError::Base64("header"))
        ));
        assert!(matches!(
            decode_unverified("WzFd.e30.c2ln"),
            Err(DecodeError::Json("header"))
        ));
    }
}
