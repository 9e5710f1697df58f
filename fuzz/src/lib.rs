//! Fixtures shared by the fuzz targets: a fixed key set with tokens it signed (captured from a
//! real issuer run, `fixtures/`), and a key-store folder with real keys for the manifest loader.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use stamp::keys::{Alg, PrivateKey, thumbprint};
use stamp::verify::{Verifier, VerifierConfig, VerifyingKeys};

/// The published JWKS of the issuer run that signed [`TOKENS`] (public keys only).
pub const JWKS: &[u8] = include_bytes!("../fixtures/jwks.json");
/// Access tokens that issuer signed, one a line; the first line is `ISSUER AUDIENCE NOW`.
pub const TOKENS: &str = include_str!("../fixtures/tokens.txt");

/// The fixed key set, the verifier and the time at which [`TOKENS`] are valid.
pub struct JwtFixture {
    pub keys: VerifyingKeys,
    pub verifier: Verifier<()>,
    pub now: i64,
    /// The signing inputs (`header.payload`) of the captured tokens: the only ones a verifier
    /// may accept, since nobody holding the private keys signs anything else.
    pub signed: Vec<String>,
}

pub fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut lines = TOKENS.lines();
        let first = lines.next().unwrap_or_default();
        let mut fields = first.split(' ');
        let issuer = fields.next().unwrap_or_default();
        let audience = fields.next().unwrap_or_default();
        let now = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let signed = lines
            .filter_map(|t| t.rsplit_once('.').map(|(m, _)| m.to_string()))
            .collect();
        let keys = VerifyingKeys::parse(JWKS).unwrap_or_default();
        let verifier = Verifier::new(VerifierConfig::new(issuer, audience), ());
        // The captured tokens must verify, or the target would only ever see refusals.
        for token in TOKENS.lines().skip(1) {
            if let Err(e) = verifier.verify_with(&keys, token, now) {
                panic!("fixture token does not verify: {e}");
            }
        }
        JwtFixture {
            keys,
            verifier,
            now,
            signed,
        }
    })
}

/// A key-store folder holding one ES256 and one RS256 key (generated once per process), and the
/// runtime the asynchronous loader runs on. Manifests name them as `KID_ES256`/`KID_RS256`.
pub struct KeyDirFixture {
    pub dir: PathBuf,
    pub es256: String,
    pub rs256: String,
    pub runtime: tokio::runtime::Runtime,
    _temp: tempfile::TempDir,
}

pub fn key_dir_fixture() -> &'static KeyDirFixture {
    static FIXTURE: OnceLock<KeyDirFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let dir = temp.path().join("keys");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("keys dir: {e}"));
        let mut kids = Vec::new();
        for alg in [Alg::Es256, Alg::Rs256] {
            let key = PrivateKey::generate(alg, 2048).unwrap_or_else(|e| panic!("keygen: {e}"));
            let kid = thumbprint(&key.public_jwk());
            let pem = key.to_pkcs8_pem().unwrap_or_else(|e| panic!("pem: {e}"));
            std::fs::write(dir.join(format!("{kid}.pem")), pem.as_bytes())
                .unwrap_or_else(|e| panic!("write key: {e}"));
            kids.push(kid);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        KeyDirFixture {
            dir,
            es256: kids[0].clone(),
            rs256: kids[1].clone(),
            runtime,
            _temp: temp,
        }
    })
}
