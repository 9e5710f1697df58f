//! Authentication: password hashing, the password grant, login throttling, sessions (refresh,
//! logout, revocation, introspection) and service clients. Who may administer the issuer is
//! decided in [`crate::admin`].

mod client_cache;
mod clients;
mod login;
mod password;
mod sessions;
mod signing;
mod throttle;

pub use client_cache::ClientCache;
pub use clients::{ClientCredentials, ClientSecret};
pub use login::{AuthError, Authenticator, IssuedRefresh, LoginRequest, Session};
pub use password::{Password, PasswordError, PasswordHasher};
pub use sessions::{Introspection, RefreshRequest, TokenHint};
pub use throttle::{Throttle, ThrottleKey, ThrottlePolicy, Throttled};
