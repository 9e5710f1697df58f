//! Thin HTTP handlers: parse, call the domain, map the result. Nothing here knows how keys are
//! stored or tokens are built.

pub mod admin;
pub mod admin_users;
pub mod guards;
pub mod health;
pub mod login;
pub mod oauth;
pub mod session;
pub mod well_known;

mod responses;

pub use responses::{TokenResponse, form_error, json_error};
