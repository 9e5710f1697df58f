//! Thin HTTP handlers: parse, call the domain, map the result. Nothing here knows how keys are
//! stored or tokens are built.
//!
//! Each endpoint family is one file with a `stage()` that mounts its routes; `crate::build`
//! attaches the stages, and background jobs are started by [`crate::jobs`]. Helpers more than one
//! family uses have one owner: [`cookies`] (cookie mode), [`client_auth`] (client
//! authentication), [`guards`] (bearer tokens, the admin guard), [`request_log`] (request ids and
//! the one log line per request) and `responses` (response shapes, body-parsing errors).

pub mod account;
pub mod admin;
pub mod admin_apis;
pub mod admin_clients;
pub mod admin_tokens;
pub mod admin_users;
pub mod client_auth;
pub mod console;
pub mod cookies;
pub mod guards;
pub mod health;
pub mod login;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod request_log;
pub mod session;
pub mod signup;
pub mod well_known;

mod responses;

pub use responses::{NoStore, TokenResponse, form_error, json_error};
