//! The JWKS document parser: never a panic; what it accepts is unambiguous (unique kids) and
//! usable (verifying a token with each key does not panic either).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stamp::verify::{Verifier, VerifierConfig, VerifyingKeys};

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = VerifyingKeys::parse(data) else {
        return;
    };
    let mut kids: Vec<&str> = keys
        .keys()
        .iter()
        .filter_map(|k| k.kid.as_deref())
        .collect();
    let total = kids.len();
    kids.sort_unstable();
    kids.dedup();
    assert_eq!(kids.len(), total, "duplicate kid accepted");
    let verifier = Verifier::new(VerifierConfig::new("i", "a"), ());
    for key in keys.keys() {
        let header = match &key.kid {
            Some(kid) => serde_json::json!({"alg": key.alg.as_str(), "typ": "at+jwt", "kid": kid}),
            None => serde_json::json!({"alg": key.alg.as_str(), "typ": "at+jwt"}),
        };
        let token = format!(
            "{}.e30.AAAA",
            base64_url(serde_json::to_vec(&header).unwrap_or_default())
        );
        assert!(verifier.verify_with(&keys, &token, 0).is_err());
    }
});

fn base64_url(bytes: Vec<u8>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
