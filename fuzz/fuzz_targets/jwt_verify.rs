//! JWT parse + verify through `stamp-verify` with a fixed key set: never a panic, and nothing
//! verifies unless its signing input is one the key holder actually signed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = stamp_fuzz::jwt_fixture();
    for now in [fixture.now, 0, i64::MAX, i64::MIN] {
        if fixture
            .verifier
            .verify_with(&fixture.keys, token, now)
            .is_ok()
        {
            let message = token.rsplit_once('.').map(|(m, _)| m).unwrap_or_default();
            assert!(
                fixture.signed.iter().any(|s| s == message),
                "a token nobody signed verified: {token}"
            );
        }
    }
});
