//! The relying party shared by the example apps (`bank`, `retirement`): a small Rocket app that
//! signs its users in through the issuer with OpenID Connect (authorization code, PKCE `S256`,
//! `state`, `nonce`), checks the ID token with `stamp::verify` against the issuer's JWKS, keeps
//! its own session cookie, and logs out through the issuer's `end_session_endpoint`.
//!
//! Everything the app needs from the issuer comes from its discovery document; nothing but the
//! issuer URL is configured. Each app reads its settings from variables named after it (for the
//! bank: `BANK_PORT`, `BANK_URL`, `BANK_CLIENT_ID`, `BANK_CLIENT_SECRET`, `BANK_RECHECK_SECS`)
//! plus `STAMP_ISSUER`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::response::Redirect;
use rocket::response::content::RawHtml;
use rocket::{State, get, post, routes};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stamp::verify::{JwksClient, JwksConfig, Verifier, VerifierConfig};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

/// What makes one example app different from the other.
pub struct AppSpec {
    /// Lower-case name: the default client id, the prefix of its cookies and (upper-cased) of
    /// its environment variables.
    pub name: &'static str,
    /// Shown in the page title and heading.
    pub title: &'static str,
    pub default_port: u16,
    /// The signed-in page's content (HTML; escape what comes from the user).
    pub content: fn(&SignedIn) -> String,
}

/// Who is signed in to the app, from the verified ID token and the userinfo answer.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub sub: String,
    pub username: String,
    /// When the user last typed their password at the issuer (`auth_time`).
    pub auth_time: Option<i64>,
}

/// Reads the settings, then serves the app until it is stopped.
pub async fn run(spec: AppSpec) -> Result<(), String> {
    let settings = Settings::from_env(&spec)?;
    let config = rocket::Config {
        address: settings.address,
        port: settings.port,
        ..rocket::Config::default()
    };
    println!(
        "{} at {} signs in through {} as client {}",
        spec.title, settings.base_url, settings.issuer, settings.client_id
    );
    let _ = rocket::custom(config)
        .manage(RelyingParty::new(spec, settings)?)
        .mount("/", routes![home, login, callback, logout])
        .launch()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Settings.

struct Settings {
    issuer: String,
    client_id: String,
    /// `None`: a public client, which proves itself with PKCE alone.
    client_secret: Option<String>,
    address: IpAddr,
    port: u16,
    /// The app's own URL as the browser sees it (redirect URIs are built from it).
    base_url: String,
    /// Seconds between checks with the issuer that the login still stands (a refresh grant);
    /// 0 checks on every page view.
    recheck_secs: i64,
}

impl Settings {
    fn from_env(spec: &AppSpec) -> Result<Settings, String> {
        let prefix = spec.name.to_uppercase();
        let var = |name: &str| std::env::var(format!("{prefix}_{name}")).ok();
        let port = match var("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{prefix}_PORT is not a port: {p}"))?,
            None => spec.default_port,
        };
        let address = match var("ADDRESS") {
            Some(a) => a
                .parse()
                .map_err(|_| format!("{prefix}_ADDRESS is not an IP address: {a}"))?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let recheck_secs = match var("RECHECK_SECS") {
            Some(s) => s
                .parse()
                .map_err(|_| format!("{prefix}_RECHECK_SECS is not a number: {s}"))?,
            None => 60,
        };
        Ok(Settings {
            issuer: std::env::var("STAMP_ISSUER")
                .unwrap_or_else(|_| "http://127.0.0.1:8000".into()),
            client_id: var("CLIENT_ID").unwrap_or_else(|| spec.name.to_string()),
            client_secret: var("CLIENT_SECRET").filter(|s| !s.is_empty()),
            address,
            port,
            base_url: var("URL")
                .unwrap_or_else(|| format!("http://{address}:{port}"))
                .trim_end_matches('/')
                .to_string(),
            recheck_secs,
        })
    }

    fn redirect_uri(&self) -> String {
        format!("{}/callback", self.base_url)
    }

    fn home_uri(&self) -> String {
        format!("{}/", self.base_url)
    }

    /// Cookies are `Secure` when the app is served over HTTPS.
    fn cookie_secure(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

// ---------------------------------------------------------------------------------------------
// State.

/// The app's state: settings, the issuer's endpoints (discovered on first use), logins in
/// progress and sessions, both in memory under random cookie values.
pub struct RelyingParty {
    spec: AppSpec,
    settings: Settings,
    http: reqwest::Client,
    provider: OnceCell<Provider>,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// The issuer as its discovery document describes it.
struct Provider {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    end_session_endpoint: Option<String>,
    /// Whether authorization responses carry `iss` (RFC 9207): then it must be checked.
    iss_parameter: bool,
    /// ID tokens: `typ` `JWT`, `iss` the issuer, `aud` this client, keys from the JWKS.
    id_tokens: Verifier<JwksClient>,
}

/// A login started in this browser and not finished yet.
struct Pending {
    state: String,
    nonce: String,
    code_verifier: String,
    started: i64,
}

/// A signed-in browser.
#[derive(Clone)]
struct Session {
    user: SignedIn,
    id_token: String,
    refresh_token: Option<String>,
    checked_at: i64,
}

/// How long a started login may take (the user typing a password).
const LOGIN_TIMEOUT_SECS: i64 = 600;

/// The answer of the token endpoint.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
}

impl RelyingParty {
    fn new(spec: AppSpec, settings: Settings) -> Result<RelyingParty, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RelyingParty {
            spec,
            settings,
            http,
            provider: OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn session_cookie(&self) -> String {
        format!("{}_session", self.spec.name)
    }

    fn login_cookie(&self) -> String {
        format!("{}_login", self.spec.name)
    }

    fn set_cookie(&self, jar: &CookieJar<'_>, name: String, value: String) {
        jar.add(
            Cookie::build((name, value))
                .path("/")
                .http_only(true)
                .secure(self.settings.cookie_secure())
                // Lax: the cookie must come along on the redirect back from the issuer.
                .same_site(SameSite::Lax),
        );
    }

    /// The issuer's endpoints, fetched once from its discovery document (the issuer need not be
    /// up when the app starts).
    async fn provider(&self) -> Result<&Provider, String> {
        self.provider.get_or_try_init(|| self.discover()).await
    }

    async fn discover(&self) -> Result<Provider, String> {
        let issuer = &self.settings.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url, None).await?;
        // OpenID Connect Discovery §4.3: the document must name exactly this issuer.
        if doc["issuer"].as_str() != Some(issuer.as_str()) {
            return Err(format!("{url} names another issuer: {}", doc["issuer"]));
        }
        let endpoint = |name: &str| {
            doc[name]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("{url} has no {name}"))
        };
        let keys = JwksClient::new(endpoint("jwks_uri")?, JwksConfig::default())
            .map_err(|e| e.to_string())?;
        let mut rules = VerifierConfig::new(issuer.clone(), self.settings.client_id.clone());
        rules.typ = Some("JWT".to_string());
        Ok(Provider {
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            userinfo_endpoint: endpoint("userinfo_endpoint")?,
            end_session_endpoint: endpoint("end_session_endpoint").ok(),
            iss_parameter: doc["authorization_response_iss_parameter_supported"] == true,
            id_tokens: Verifier::new(rules, keys),
        })
    }

    /// Starts a login: fresh `state`, `nonce` and PKCE verifier kept server-side under a random
    /// cookie; returns the authorization request URL.
    async fn start_login(&self, jar: &CookieJar<'_>) -> Result<String, String> {
        let provider = self.provider().await?;
        let pending = Pending {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
            started: stamp::clock::now(),
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.code_verifier.as_bytes()));
        let mut url =
            url::Url::parse(&provider.authorization_endpoint).map_err(|e| e.to_string())?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri())
            .append_pair("scope", "openid profile")
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let id = random_token();
        {
            let mut all = lock(&self.pending);
            let now = pending.started;
            all.retain(|_, p| now - p.started < LOGIN_TIMEOUT_SECS);
            all.insert(id.clone(), pending);
        }
        self.set_cookie(jar, self.login_cookie(), id);
        Ok(url.into())
    }

    /// Finishes a login: the browser's pending login must match `state` (and `iss`), the code is
    /// exchanged with the verifier, the ID token checked (signature, `iss`, `aud`, `exp`,
    /// `nonce`, `at_hash`) and the user read from userinfo (same `sub`).
    async fn finish_login(
        &self,
        jar: &CookieJar<'_>,
        answer: AuthorizationAnswer,
    ) -> Result<(), String> {
        let pending = jar
            .get(&self.login_cookie())
            .and_then(|c| lock(&self.pending).remove(c.value()))
            .ok_or("no sign-in was started in this browser (or it timed out)")?;
        jar.remove(Cookie::build(self.login_cookie()).path("/"));
        if stamp::clock::now() - pending.started >= LOGIN_TIMEOUT_SECS {
            return Err("the sign-in took too long; start again".into());
        }
        if !equal(answer.state.as_deref().unwrap_or(""), &pending.state) {
            return Err("the answer does not belong to the sign-in started here (state)".into());
        }
        let provider = self.provider().await?;
        // RFC 9207: a mix-up attack shows as an answer from another issuer.
        if provider.iss_parameter && answer.iss.as_deref() != Some(self.settings.issuer.as_str()) {
            return Err("the answer names another issuer (iss)".into());
        }
        if let Some(error) = answer.error {
            return Err(format!(
                "the issuer refused: {error} {}",
                answer.error_description.unwrap_or_default()
            ));
        }
        let code = answer.code.ok_or("the answer has no code")?;
        let tokens = self
            .token_request(
                provider,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &self.settings.redirect_uri()),
                    ("code_verifier", &pending.code_verifier),
                ],
            )
            .await?;
        let id_token = tokens.id_token.ok_or("the token answer has no id_token")?;
        let now = stamp::clock::now();
        let claims = provider
            .id_tokens
            .verify(&id_token, now)
            .await
            .map_err(|e| format!("ID token refused: {e}"))?;
        let extra = payload(&id_token)?;
        if !equal(extra["nonce"].as_str().unwrap_or(""), &pending.nonce) {
            return Err("ID token refused: nonce differs".into());
        }
        if extra["at_hash"].as_str() != Some(at_hash(&tokens.access_token).as_str()) {
            return Err("ID token refused: at_hash does not match the access token".into());
        }
        let userinfo = self
            .get_json(&provider.userinfo_endpoint, Some(&tokens.access_token))
            .await?;
        if userinfo["sub"].as_str() != Some(claims.sub.as_str()) {
            return Err("userinfo describes another subject".into());
        }
        let user = SignedIn {
            username: userinfo["preferred_username"]
                .as_str()
                .unwrap_or(&claims.sub)
                .to_string(),
            sub: claims.sub,
            auth_time: extra["auth_time"].as_i64(),
        };
        let id = random_token();
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                user,
                id_token,
                refresh_token: tokens.refresh_token,
                checked_at: now,
            },
        );
        self.set_cookie(jar, self.session_cookie(), id);
        Ok(())
    }

    /// The browser's session, checked with the issuer (a refresh grant) when the last check is
    /// older than `recheck_secs`: a logout elsewhere revokes the refresh token, so the app's
    /// session ends too.
    async fn session(&self, jar: &CookieJar<'_>) -> Option<Session> {
        let id = jar.get(&self.session_cookie())?.value().to_string();
        let session = lock(&self.sessions).get(&id).cloned()?;
        let now = stamp::clock::now();
        if now - session.checked_at < self.settings.recheck_secs {
            return Some(session);
        }
        match self.recheck(&session).await {
            Ok(refresh_token) => {
                let renewed = Session {
                    refresh_token,
                    checked_at: now,
                    ..session
                };
                lock(&self.sessions).insert(id, renewed.clone());
                Some(renewed)
            }
            Err(why) => {
                println!(
                    "{}: session of {} ended: {why}",
                    self.spec.name, session.user.sub
                );
                lock(&self.sessions).remove(&id);
                jar.remove(Cookie::build(self.session_cookie()).path("/"));
                None
            }
        }
    }

    async fn recheck(&self, session: &Session) -> Result<Option<String>, String> {
        let token = session.refresh_token.as_deref().ok_or("no refresh token")?;
        let provider = self.provider().await?;
        let tokens = self
            .token_request(
                provider,
                &[("grant_type", "refresh_token"), ("refresh_token", token)],
            )
            .await?;
        Ok(tokens.refresh_token.or(session.refresh_token.clone()))
    }

    /// Ends the app's session; returns where the browser goes next: the issuer's logout (with
    /// the ID token as hint and the app's home as the way back), or home.
    async fn logout(&self, jar: &CookieJar<'_>) -> String {
        let session = jar
            .get(&self.session_cookie())
            .and_then(|c| lock(&self.sessions).remove(c.value()));
        jar.remove(Cookie::build(self.session_cookie()).path("/"));
        let home = self.settings.home_uri();
        let (Some(session), Ok(provider)) = (session, self.provider().await) else {
            return home;
        };
        let Some(Ok(mut url)) = provider
            .end_session_endpoint
            .as_deref()
            .map(url::Url::parse)
        else {
            return home;
        };
        url.query_pairs_mut()
            .append_pair("id_token_hint", &session.id_token)
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("post_logout_redirect_uri", &home);
        url.into()
    }

    /// `POST` to the token endpoint, authenticated as the client (Basic, RFC 6749 §2.3.1) or,
    /// for a public client, naming it in the form.
    async fn token_request(
        &self,
        provider: &Provider,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, String> {
        let mut request = self
            .http
            .post(&provider.token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded");
        let public_id = match &self.settings.client_secret {
            Some(secret) => {
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request =
                    request.basic_auth(encode(&self.settings.client_id), Some(encode(secret)));
                None
            }
            None => Some(self.settings.client_id.as_str()),
        };
        let body = form_body(params, public_id);
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "token endpoint answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("token endpoint: {e}"))
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, String> {
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Routes.

#[get("/")]
async fn home(rp: &State<RelyingParty>, jar: &CookieJar<'_>) -> RawHtml<String> {
    let body = match rp.session(jar).await {
        Some(session) => {
            let user = &session.user;
            let since = user
                .auth_time
                .map(|t| format!(" You typed your password at the issuer at {t} (Unix time)."))
                .unwrap_or_default();
            format!(
                "<p>Signed in as <strong id=\"user\">{}</strong>.{since}</p>\n{}\n\
                 <form method=\"post\" action=\"/logout\"><button id=\"log-out\" type=\"submit\">Log out</button></form>",
                escape(&user.username),
                (rp.spec.content)(user)
            )
        }
        None => "<p id=\"signed-out\">You are not signed in.</p>\n\
                 <p><a id=\"sign-in\" href=\"/login\">Sign in with your Stamp account</a></p>"
            .to_string(),
    };
    page(rp.spec.title, &body)
}

#[get("/login")]
async fn login(
    rp: &State<RelyingParty>,
    jar: &CookieJar<'_>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    match rp.start_login(jar).await {
        Ok(url) => Ok(Redirect::to(url)),
        Err(why) => Err(failure(&rp.spec, Status::ServiceUnavailable, &why)),
    }
}

/// The authorization response (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207).
#[derive(Debug, rocket::FromForm)]
struct AuthorizationAnswer {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[get("/callback?<answer..>")]
async fn callback(
    rp: &State<RelyingParty>,
    jar: &CookieJar<'_>,
    answer: AuthorizationAnswer,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    match rp.finish_login(jar, answer).await {
        Ok(()) => Ok(Redirect::to("/")),
        Err(why) => Err(failure(&rp.spec, Status::BadRequest, &why)),
    }
}

#[post("/logout")]
async fn logout(rp: &State<RelyingParty>, jar: &CookieJar<'_>) -> Redirect {
    Redirect::to(rp.logout(jar).await)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn page(title: &str, body: &str) -> RawHtml<String> {
    RawHtml(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}</style>\
         </head><body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    ))
}

fn failure(spec: &AppSpec, status: Status, why: &str) -> (Status, RawHtml<String>) {
    println!("{}: sign-in failed: {why}", spec.name);
    let body = format!(
        "<p role=\"alert\" id=\"error\">Sign-in failed: {}</p><p><a href=\"/\">Back</a></p>",
        escape(why)
    );
    (status, page(spec.title, &body))
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` of `params`, plus `client_id` for a public client.
fn form_body(params: &[(&str, &str)], public_client_id: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params);
    if let Some(id) = public_client_id {
        form.append_pair("client_id", id);
    }
    form.finish()
}

/// 256 random bits, base64url (state, nonce, PKCE verifier, cookie values).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// OpenID Connect Core §3.1.3.6: base64url of the left half of SHA-256 of the access token
/// (ES256 and RS256 both hash with SHA-256).
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The claims of a token whose signature was already verified (for the ones `Claims` does not
/// carry: `nonce`, `at_hash`, `auth_time`).
fn payload(token: &str) -> Result<Value, String> {
    let part = token.split('.').nth(1).ok_or("ID token is not a JWS")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "ID token payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|e| format!("ID token payload: {e}"))
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A poisoned lock only means another request panicked; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
