//! The key-store manifest loader (file store + key-set build, what start-up runs): input is
//! `manifest.json`, with `KID_ES256`/`KID_RS256` standing for the two real keys in the folder.
//! Never a panic; a loaded set publishes only published-state keys, each verifiable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stamp::keys::{FileKeyStore, KeyStore, load_set};

fuzz_target!(|data: &[u8]| {
    let fixture = stamp_fuzz::key_dir_fixture();
    let text = String::from_utf8_lossy(data)
        .replace("KID_ES256", &fixture.es256)
        .replace("KID_RS256", &fixture.rs256);
    if std::fs::write(fixture.dir.join("manifest.json"), text.as_bytes()).is_err() {
        return;
    }
    let Ok(store) = FileKeyStore::open(&fixture.dir) else {
        return;
    };
    if let Ok(set) = fixture.runtime.block_on(load_set(&store as &dyn KeyStore)) {
        assert_eq!(set.keys().len(), set.verifying_keys().keys().len());
        for key in set.keys() {
            assert!(key.meta.state.is_published());
            assert!(set.verifying_keys().find(&key.meta.kid).is_some());
        }
    }
});
