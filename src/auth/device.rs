//! Device cookies (OWASP "Slow down online guessing attacks with device cookies"): a browser or
//! app that has logged in as a user gets a random identifier MAC'd with a key only this process
//! knows, bound to that username. A login that presents one is throttled by that device's own
//! failures only (see [`super::throttle`]), so an attacker who knows only the username cannot
//! hold the owner up.
//!
//! The MAC key is random per process and kept in memory, like the throttle counters: a device
//! cookie is recognised by the replica that issued it, until it restarts. Elsewhere it is simply
//! not trusted, and the login is throttled like any other.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The device cookie's name (it contains `device`: `/logout` leaves it in place).
pub const DEVICE_COOKIE: &str = "stamp_device";

/// Lifetime of a device cookie in seconds: a year (browsers cap cookies at 400 days).
pub const DEVICE_COOKIE_TTL: i64 = 365 * 86_400;

/// Issues and checks device cookies.
pub struct DeviceCookies {
    key: hmac::Key,
}

impl DeviceCookies {
    /// A fresh MAC key from the operating system's random source.
    pub fn new() -> DeviceCookies {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::Rng::fill_bytes(&mut rand::rng(), &mut secret[..]);
        DeviceCookies {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret[..]),
        }
    }

    /// A new cookie value for `username` (canonical): `ID.MAC`, both base64url.
    pub fn issue(&self, username: &str) -> String {
        let id = crate::store::random_id();
        let tag = hmac::sign(&self.key, &message(username, &id));
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The device's identifier if `value` is a cookie this process issued for `username`.
    pub fn verify(&self, username: &str, value: &str) -> Option<String> {
        let (id, tag) = value.split_once('.')?;
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &message(username, id), &tag).ok()?;
        Some(id.to_string())
    }
}

impl Default for DeviceCookies {
    fn default() -> Self {
        DeviceCookies::new()
    }
}

/// What the MAC covers: a label, the username and the identifier, each length-prefixed.
fn message(username: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + username.len() + id.len());
    out.extend_from_slice(b"stamp device cookie v1");
    for part in [username, id] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_valid_only_for_its_username_and_issuer() {
        let devices = DeviceCookies::new();
        let cookie = devices.issue("alice");
        let id = devices.verify("alice", &cookie).unwrap();
        assert!(cookie.starts_with(&format!("{id}.")));
        assert_eq!(devices.verify("bob", &cookie), None);
        assert_eq!(DeviceCookies::new().verify("alice", &cookie), None);
        let forged = format!("{id}x.{}", cookie.split_once('.').unwrap().1);
        assert_eq!(devices.verify("alice", &forged), None);
        assert_eq!(devices.verify("alice", "garbage"), None);
        assert_ne!(devices.issue("alice"), cookie, "random each time");
    }
}
