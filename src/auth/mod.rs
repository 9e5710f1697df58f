//! Authentication: password hashing and the password grant.

mod login;
mod password;

pub use login::{AuthError, Authenticator, LoginRequest};
pub use password::{Password, PasswordError, PasswordHasher};
