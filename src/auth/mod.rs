//! Authentication: password hashing, the password grant, login throttling, sessions (refresh,
//! logout, revocation, introspection) and service clients. Who may administer the issuer is
//! decided in [`crate::admin`].

mod client_cache;
mod clients;
mod device;
mod inspect;
mod login;
mod online;
mod password;
mod resources;
mod sessions;
mod signing;
mod throttle;

pub use client_cache::ClientCache;
pub use clients::{
    CONSOLE_CLIENT_ID, CONSOLE_PATH, ClientCredentials, ClientSecret, PresentedClient,
    console_client, ensure_default_client,
};
pub use device::{DEVICE_COOKIE, DEVICE_COOKIE_TTL, DeviceCookies};
pub use inspect::{CheckResult, InspectError, Inspection};
pub use login::{
    AuthError, Authenticator, IssuedRefresh, LoginRequest, NewFamily, PasswordAttempt, Session,
};
pub use online::{Audience, LiveToken, OnlineError, TokenOwner};
pub use password::{Admitted, Password, PasswordError, PasswordHasher, PasswordPolicy};
pub use resources::single_resource;
pub use sessions::{Introspection, RefreshRequest, TokenHint};
pub use throttle::{Attempt, Reservation, Throttle, ThrottleKey, ThrottlePolicy, Throttled};
