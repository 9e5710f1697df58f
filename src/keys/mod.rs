//! Signing keys: generation, JWK encoding and thumbprints, the published key set, key stores.

mod alg;
mod file_store;
mod jwk;
mod manager;
mod material;
mod pg_store;
mod set;
mod signer;
mod store;

pub use alg::Alg;
pub use file_store::FileKeyStore;
pub use jwk::{PublicJwk, thumbprint};
pub use manager::{KeyError, KeyManager, Lifecycle, RotateOptions};
pub use material::PrivateKey;
pub use pg_store::{Kek, KekError, PG_MIGRATOR, PgKeyStore, follow_changes};
pub use set::{KeySet, LoadedKey};
pub use signer::{SignError, Signer};
pub use store::{KeyMeta, KeyState, KeyStore, KeyStoreError, Manifest, StoredKey};
