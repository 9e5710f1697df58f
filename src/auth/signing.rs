//! Which key signs a token: the active key of the algorithm asked for, never a key that caches
//! may not know yet (DESIGN.md, "Key lifecycle"). Keys are never made here, on a request: the key
//! set has them from the start or from `clients add` ([`crate::keys::KeyManager::publish_keys`]).

use crate::keys::{Alg, KeyError};
use crate::tokens::{IssuedToken, Subject};

use super::login::{AuthError, Authenticator};

impl Authenticator {
    /// Signs with the configured algorithm's active key. Right after `signing_alg` was changed on
    /// an existing key set, the new algorithm has only a published `next` key; until the key
    /// upkeep promotes it (max-age plus leeway later), the algorithm that has been signing keeps
    /// signing, so the change takes effect without refusing logins and without a key that
    /// resource servers may not have yet.
    /// `audience` is a registered API's identifier, `None` for the configured default.
    pub(super) fn sign(
        &self,
        subject: Subject,
        audience: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        let keys = self.keys.snapshot();
        let configured = self.tokens.alg();
        let alg = if keys.active(configured).is_some() {
            configured
        } else {
            Alg::ALL
                .into_iter()
                .find(|alg| keys.active(*alg).is_some())
                .unwrap_or(configured)
        };
        Ok(self.tokens.issue_to(&keys, subject, alg, audience, now)?)
    }

    /// Signs with the active key of `alg`, which a service client named: its resource servers
    /// may accept nothing else, so there is no fallback. While `alg`'s first key is still being
    /// pre-published the answer is [`KeyError::NotYetActive`] (`503` with `Retry-After`); with no
    /// key at all (a client written to the database by hand) [`KeyError::NoActiveKey`] (`500`,
    /// logged with the algorithm).
    pub(super) fn sign_with(
        &self,
        subject: Subject,
        alg: Alg,
        audience: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, AuthError> {
        let keys = self.keys.snapshot();
        if keys.active(alg).is_none() {
            let source = match self.keys.activation_pending(alg) {
                Some(active_from) => KeyError::NotYetActive {
                    alg,
                    active_from,
                    retry_after: u64::try_from(active_from - now).unwrap_or(0).max(1),
                },
                None => KeyError::NoActiveKey(alg),
            };
            return Err(AuthError::Keys { alg, source });
        }
        Ok(self.tokens.issue_to(&keys, subject, alg, audience, now)?)
    }
}
