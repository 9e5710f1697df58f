//! Example app "retirement": the second app of the owner of `bank`, another registered client
//! of the issuer. A user already signed in to the bank gets in here without typing a password
//! (single sign-on through the issuer's session). Shared relying-party code: `common/`.
//!
//! ```sh
//! stamp clients add retirement --grant authorization_code --grant refresh_token \
//!     --redirect-uri http://127.0.0.1:8082/callback --post-logout-redirect-uri http://127.0.0.1:8082/
//! RETIREMENT_CLIENT_SECRET=... STAMP_ISSUER=http://127.0.0.1:8000 cargo run --example retirement
//! ```

mod common;

use common::{AppSpec, SignedIn, escape};

#[rocket::main]
async fn main() -> Result<(), String> {
    common::run(AppSpec {
        name: "retirement",
        title: "Stamp Retirement",
        default_port: 8082,
        content: plan,
    })
    .await
}

fn plan(user: &SignedIn) -> String {
    format!(
        "<h2>Retirement plan of {}</h2>\n<p>Projected pension: 1,900.00 a month.</p>",
        escape(&user.username)
    )
}
