//! The token endpoint's form and Basic-header parsing (RFC 6749 §2.3.1, §3.2): input is
//! `AUTHORIZATION\nBODY` (no newline: no header). Never a panic; a refusal is always a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stamp::auth::{ClientCredentials, PresentedClient};
use stamp::routes::oauth::parse_token_request;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (authorization, body) = match text.split_once('\n') {
        Some((header, body)) => (Some(header), body),
        None => (None, text.as_ref()),
    };
    match parse_token_request(body, authorization) {
        Ok(PresentedClient::Authenticated(credentials)) => {
            assert!(!credentials.client_id.is_empty() || authorization.is_some());
        }
        Ok(_) => {}
        Err(e) => assert!(
            (400..500).contains(&e.status.code),
            "client input answered {}",
            e.status
        ),
    }
    if let Some(header) = authorization
        && let Some(Ok(credentials)) = ClientCredentials::from_basic(header)
    {
        // Whatever decoded came from the header's base64 payload.
        assert!(credentials.client_id.len() + credentials.secret.len() <= header.len());
    }
});
