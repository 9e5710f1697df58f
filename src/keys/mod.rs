//! Signing keys: generation, JWK encoding and thumbprints, the published key set, key stores.

mod events;
mod file_store;
mod jwk;
mod manager;
mod material;
mod pg_store;
mod set;
mod signer;
mod store;

pub use events::{Followed, follow_changes, follow_changes_observed};
pub use file_store::FileKeyStore;
pub use jwk::{PublicJwk, thumbprint};
pub use manager::{ChangedBy, KeyError, KeyManager, Lifecycle, RotateOptions, load_set};
pub use material::{MaterialError, PrivateKey};
pub use pg_store::{Kek, KekError, KeyChange, KeyChanges, PgKeyStore, Rewrapped};
pub use set::{KeySet, LoadedKey, strong_etag};
pub use signer::{SignError, Signer};
/// The allowlist of signing algorithms, shared with the verifier.
pub use stamp_verify::Alg;
pub use store::{ChangeRecord, KeyMeta, KeyState, KeyStore, KeyStoreError, Manifest, StoredKey};
