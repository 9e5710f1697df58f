//! The admin service: every administrative change (users, clients, keys) and a user's own
//! password change, performed and audited once, for the HTTP API and the `stamp` CLI alike.
//!
//! Callers parse their input (a path segment, a JSON body, command-line arguments), name the
//! [`Actor`], call [`AdminService`] and present the result; the rules live here.

mod actor;
mod apis;
mod service;
mod users;

pub use actor::{ADMIN, Actor, Admin, NotAdmin, client_still_admin, still_admin, user_still_admin};
pub use apis::{ApiUpdate, NewResourceServer};
pub use service::{
    AdminError, AdminService, AuditFailure, ClientUpdate, MAX_SECRET_OVERLAP, NewAccount,
    NewServiceClient, PasswordChange, UserRef, UserUpdate,
};
pub use users::{UserView, rfc3339};
