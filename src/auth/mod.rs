//! Authentication: password hashing, the password grant, login throttling, sessions (refresh,
//! logout, revocation, introspection) and service clients.

mod admin;
mod client_cache;
mod clients;
mod login;
mod password;
mod sessions;
mod throttle;

pub use admin::{ADMIN, Admin, NotAdmin};
pub use client_cache::ClientCache;
pub use clients::{ClientCredentials, ClientSecret};
pub use login::{AuthError, Authenticator, IssuedRefresh, LoginRequest, Session};
pub use password::{Password, PasswordError, PasswordHasher};
pub use sessions::{Introspection, RefreshRequest, TokenHint};
pub use throttle::{Throttle, ThrottleKey, ThrottlePolicy, Throttled};
