//! Authentication: password hashing and the password grant.

mod admin;
mod login;
mod password;

pub use admin::{ADMIN, Admin, NotAdmin};
pub use login::{AuthError, Authenticator, LoginRequest};
pub use password::{Password, PasswordError, PasswordHasher};
