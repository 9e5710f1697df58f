//! The session cookies of cookie mode: names, paths, setting them from a grant and clearing
//! them. The token endpoint, `/login` and `/logout` share them.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;
use secrecy::ExposeSecret;

use crate::App;
use crate::auth::{DEVICE_COOKIE, DEVICE_COOKIE_TTL, Session};

use super::TokenResponse;

/// The access-token cookie: sent with every request to the issuer's site (`Path=/`).
pub const ACCESS_COOKIE: &str = "stamp_access";
/// The refresh-token cookie, sent only to the token endpoint.
pub const REFRESH_COOKIE: &str = "stamp_refresh";
/// The same refresh token, sent only to the logout endpoint. A cookie has one `Path`, so the
/// two endpoints get one cookie each rather than one cookie scoped to `/`.
pub const LOGOUT_COOKIE: &str = "stamp_logout";

const TOKEN_PATH: &str = "/oauth/token";
const LOGOUT_PATH: &str = "/logout";

fn session_cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(Duration::seconds(max_age))
        .build()
}

/// Answers a grant: in cookie mode the tokens go into `HttpOnly` cookies (`Max-Age` = their
/// lifetimes in seconds) and are left out of the body; otherwise the usual JSON.
pub fn respond(
    app: &App,
    jar: &CookieJar<'_>,
    session: Session,
    cookie_mode: bool,
) -> TokenResponse {
    if !cookie_mode {
        return session.into();
    }
    let secure = app.config.cookies.secure;
    jar.add(session_cookie(
        ACCESS_COOKIE,
        session.access.access_token.expose_secret().to_string(),
        "/",
        session.access.expires_in,
        secure,
    ));
    if let Some(refresh) = &session.refresh {
        for (name, path) in [(REFRESH_COOKIE, TOKEN_PATH), (LOGOUT_COOKIE, LOGOUT_PATH)] {
            jar.add(session_cookie(
                name,
                refresh.token.expose().to_string(),
                path,
                refresh.expires_in,
                secure,
            ));
        }
    }
    TokenResponse {
        access_token: None,
        refresh_token: None,
        ..session.into()
    }
}

/// Sets the device cookie after a successful password login (both endpoints, whatever the cookie
/// mode: it carries no token, only the proof that this device logged in as `username` before,
/// which the login throttle honours). `Path=/` so `/login` and `/oauth/token` both receive it;
/// `/logout` leaves it in place.
pub fn set_device(app: &App, jar: &CookieJar<'_>, username: &str) {
    let Some(value) = app.auth.device_cookie(username) else {
        return;
    };
    jar.add(
        Cookie::build((DEVICE_COOKIE, value))
            .path("/")
            .http_only(true)
            .secure(app.config.cookies.secure)
            .same_site(SameSite::Strict)
            .max_age(Duration::seconds(DEVICE_COOKIE_TTL))
            .build(),
    );
}

/// The device cookie the request carries, if any.
pub fn device(jar: &CookieJar<'_>) -> Option<String> {
    jar.get(DEVICE_COOKIE).map(|c| c.value().to_string())
}

/// Expires every session cookie a grant set: one removal `Set-Cookie` per name and path, sent
/// whether or not the request carried the cookie. A browser sends each cookie only to its own
/// `Path`, so `/logout` never sees the refresh cookie (`Path=/oauth/token`) and a refresh never
/// sees the logout cookie; removing only the cookies a request carried would leave those behind.
/// Other cookies (the throttling device cookie, whose name contains `device`) are left alone.
pub fn clear(app: &App, jar: &CookieJar<'_>) {
    let secure = app.config.cookies.secure;
    for (name, path) in [
        (ACCESS_COOKIE, "/"),
        (REFRESH_COOKIE, TOKEN_PATH),
        (LOGOUT_COOKIE, LOGOUT_PATH),
    ] {
        let mut removal = session_cookie(name, String::new(), path, 0, secure);
        removal.make_removal();
        jar.add(removal);
    }
}
