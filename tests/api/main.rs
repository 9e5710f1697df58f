//! The one integration-test binary (each extra binary costs link time on a 2-core CI box).
//! Modules drive the real Rocket app through `rocket::local::asynchronous::Client`, or the real
//! `stamp` binary on a loopback port.
// Tests and their helpers fail by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod accounts;
mod admin;
mod apis;
mod audit_query;
mod audit_trail;
mod browser;
mod cli;
mod clients;
mod clients_admin;
mod config;
mod console;
mod docs;
mod hostile;
mod interop;
mod jwks;
mod keys;
mod login;
mod logs;
mod metrics;
mod oidc;
mod openapi;
mod ops_defaults;
mod postgres;
mod properties;
mod rotation;
mod rp_interop;
mod scale;
mod secrets;
mod sessions;
mod shutdown;
mod signup;
mod slow_clients;
mod sqlite_outage;
mod trust_clients;
mod trust_keys;
mod trust_revoke;
mod trust_throttle;
mod users_admin;
mod verify;
