//! Example app "bank": one of two apps of the same owner that sign their users in through the
//! issuer (OpenID Connect); sign in here and the `retirement` app lets you in without a password.
//! The relying-party code they share is in `common/`; docs/oidc.md, "Example apps: one login for
//! two apps", walks through running both.
//!
//! ```sh
//! stamp clients add bank --grant authorization_code --grant refresh_token \
//!     --redirect-uri http://127.0.0.1:8081/callback --post-logout-redirect-uri http://127.0.0.1:8081/
//! BANK_CLIENT_SECRET=... STAMP_ISSUER=http://127.0.0.1:8000 cargo run --example bank
//! ```

mod common;

use common::{AppSpec, SignedIn, escape};

#[rocket::main]
async fn main() -> Result<(), String> {
    common::run(AppSpec {
        name: "bank",
        title: "Stamp Bank",
        default_port: 8081,
        content: accounts,
    })
    .await
}

fn accounts(user: &SignedIn) -> String {
    format!(
        "<h2>Accounts of {}</h2>\n<ul><li>Checking: 1,250.00</li><li>Savings: 8,400.00</li></ul>",
        escape(&user.username)
    )
}
