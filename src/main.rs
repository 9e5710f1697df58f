//! The `stamp` command: `serve` runs the issuer; `users`, `keys` and `token` manage it from the
//! shell with the same configuration as the server.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::process::ExitCode;

mod cli_apis;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use serde_json::Value;
use tracing::Level;

use stamp::StartError;
use stamp::admin::{
    ADMIN, Actor, AdminError, AdminService, AuditFailure, NewAccount, NewServiceClient, UserRef,
    UserUpdate, UserView, rfc3339,
};
use stamp::auth::{Password, PasswordHasher};
use stamp::clock::Clock;
use stamp::config::{self, Config};
use stamp::keys::{Alg, KeyManager, RotateOptions};
use stamp::logging::LogFormat;
use stamp::store::{self, AuditFilter, ClientId, GrantType, RedirectUri, Role, Scope, Username};
use stamp::tokens::dangerous;

#[derive(Parser)]
#[command(
    name = "stamp",
    version,
    about = "Asymmetric-key JWT access-token issuer"
)]
struct Cli {
    /// Print which configuration file, database and key store the command uses.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the issuer (settings: Rocket.toml and ROCKET_* variables); the first start
    /// creates the database and the keys.
    Serve,
    /// Create a fresh deployment where the settings point: the database, the signing keys and
    /// the built-in client. Keeps whatever exists. The other commands (except serve) never
    /// create one: they refuse, naming the path, when there is none.
    Init,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage service clients (client_credentials grant).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manage registered APIs (resource servers, token audiences).
    Apis {
        #[command(subcommand)]
        command: cli_apis::ApisCommand,
    },
    /// Inspect signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Move an embedded deployment (SQLite and the file key store in `keys_dir`) into an empty
    /// PostgreSQL database, keys encrypted under `key_encryption_key`.
    Migrate {
        /// The SQLite store, `sqlite://PATH`.
        #[arg(long)]
        from: String,
        /// The empty PostgreSQL database, `postgres://USER@HOST/DATABASE`.
        #[arg(long)]
        to: String,
    },
    /// Work with tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show the audit log, newest first.
    Audit {
        /// Only events at or after this time (RFC 3339 UTC like 2026-01-31T12:00:00Z, or unix
        /// seconds).
        #[arg(long)]
        since: Option<String>,
        /// Only this action (e.g. users.add).
        #[arg(long)]
        action: Option<String>,
        /// Only this actor (cli, user:<id>, client:<id>).
        #[arg(long)]
        actor: Option<String>,
        /// At most this many events (1 to 500).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; the password is prompted for (no echo) or read from stdin.
    Add {
        name: String,
        /// Give the user the `admin` role.
        #[arg(long)]
        admin: bool,
        /// A role for the user (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users, by username.
    List {
        /// One JSON document (an array of users) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        name: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled user: logins work again (tokens from before stay revoked).
    Enable { name: String },
    /// Disable a user: logins fail from now on.
    Disable { name: String },
    /// Delete a user with every refresh token they hold; their access tokens fail every online
    /// check from now on.
    Delete {
        name: String,
        /// Confirm the deletion (required).
        #[arg(long)]
        yes: bool,
    },
    /// Set a user's roles (replacing the old ones).
    Roles {
        name: String,
        /// The new roles.
        roles: Vec<String>,
        /// Remove every role.
        #[arg(long, conflicts_with = "roles")]
        clear: bool,
    },
    /// Log a user out everywhere: every refresh token they hold stops working.
    RevokeTokens { name: String },
    /// Reset a user's password (prompted for without echo, or read from stdin); every session
    /// of the user ends, as with revoke-tokens.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client. A confidential client's secret is printed once and stored only as a
    /// hash; a public client (--public) has none.
    Add {
        id: String,
        /// A scope the client may ask for (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A public client (browser or native app): no secret, never authenticates.
        #[arg(long)]
        public: bool,
        /// An absolute redirection URI without fragment, for the authorization-code grant
        /// (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A grant the client may use: password, refresh_token, client_credentials or
        /// authorization_code (repeatable; default: client_credentials, or password and
        /// refresh_token for --public).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Sign this client's tokens with ES256 or RS256 (default: the configured signing_alg).
        #[arg(long)]
        alg: Option<String>,
        /// A third-party app: users see a consent screen at sign-in (default: first-party,
        /// no consent screen).
        #[arg(long)]
        third_party: bool,
        /// Where OpenID Connect RP-initiated logout may send the browser back (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
    },
    /// List clients.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Enable a client again.
    Enable { id: String },
    /// Disable a client: it cannot authenticate from now on.
    Disable { id: String },
    /// Delete a client: its refresh tokens are revoked and its own tokens fail online checks.
    Delete {
        id: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Give a confidential client a new secret, printed once on stdout.
    RotateSecret {
        id: String,
        /// Keep the old secret valid for this many seconds (at most 7 days); default: it stops
        /// working at once.
        #[arg(long = "overlap", value_name = "SECS")]
        overlap: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the keys of the key set with their states.
    List {
        /// One JSON array (kid, alg, state and unix times) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Rotate: promote the published next key, retire the active one, publish a fresh next key.
    Rotate {
        /// Algorithm to rotate (default: the configured signing_alg).
        #[arg(long)]
        alg: Option<String>,
        /// Promote the next key even if it has been published for less than max-age + leeway.
        #[arg(long)]
        force: bool,
    },
    /// Emergency revocation of a compromised key: unpublished at once.
    Revoke {
        /// The key's kid. A kid is base64url and may begin with `-`: it is taken as given.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Re-encrypt every stored private key under the first key-encryption key of
    /// `key_encryption_key` (database key store): one transaction; run again after an
    /// interruption. Key-encryption-key rotation: put the new KEK first, rewrap, drop the old.
    Rewrap,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a token's header and claims WITHOUT verifying it.
    Decode {
        /// The token, or `-` to read it from standard input (keeps it out of the shell history).
        token: String,
    },
    /// Verify a token with the issuer's published keys (found through discovery) and print its
    /// claims; exits non-zero with the reason when it is not valid.
    Verify {
        /// The issuer's URL: `iss` must equal it; its discovery document names the JWKS
        /// (default: the `issuer` setting).
        #[arg(long)]
        issuer: Option<String>,
        /// The audience the token must be for (default: the `audience` setting).
        #[arg(long)]
        audience: Option<String>,
        /// The token, or `-` to read it from standard input.
        token: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Usage(String),
    /// Standard output was closed early (`stamp users list | head -1`): not an error to report.
    #[error("standard output closed")]
    ClosedOutput,
}

impl From<store::StoreError> for CliError {
    fn from(e: store::StoreError) -> Self {
        CliError::Start(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) | Err(CliError::ClosedOutput) => ExitCode::SUCCESS,
        Err(e) => {
            let message = stamp::error::error_chain(&e);
            match stamp::logging::format() {
                LogFormat::Text => eprintln!("error: {message}"),
                LogFormat::Json => eprint!(
                    "{}",
                    stamp::logging::json_line(
                        Level::ERROR,
                        "stamp",
                        &stamp::logging::redact(&message),
                        &[]
                    )
                ),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if cli.verbose {
        describe_configuration();
    }
    match cli.command {
        Command::Serve => serve().await,
        Command::Init => init().await,
        Command::Users { command } => users(command).await,
        Command::Clients { command } => clients(command).await,
        Command::Apis { command } => cli_apis::apis(command).await,
        Command::Keys { command } => keys(command).await,
        Command::Migrate { from, to } => migrate(&from, &to).await,
        Command::Audit {
            since,
            action,
            actor,
            limit,
            json,
        } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            let filter = AuditFilter {
                actor,
                action,
                since,
                ..AuditFilter::default()
            };
            audit(&filter, limit, json).await
        }
        Command::Token {
            command: TokenCommand::Decode { token },
        } => decode(&read_token(&token)?),
        Command::Token {
            command:
                TokenCommand::Verify {
                    issuer,
                    audience,
                    token,
                },
        } => verify_token(issuer, audience, &read_token(&token)?).await,
    }
}

async fn serve() -> Result<(), CliError> {
    let rocket = stamp::build(config::figment())
        .await?
        .ignite()
        .await
        .map_err(|e| CliError::Usage(format!("server failed to start: {e}")))?;
    let Some(app) = rocket.state::<stamp::App>() else {
        return Err(CliError::Usage(
            "server failed to start: no application state".into(),
        ));
    };
    let address = std::net::SocketAddr::new(rocket.config().address, rocket.config().port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| CliError::Usage(format!("server failed: cannot listen on {address}: {e}")))?;
    let listen = listener.local_addr().unwrap_or(address);
    let facts = startup_facts(app, (listen.ip(), listen.port()));
    match stamp::logging::format() {
        LogFormat::Text => eprint!("{}", startup_summary(&facts)),
        LogFormat::Json => {
            let fields = facts
                .iter()
                .map(|(name, value)| (name.replace(' ', "_"), Value::from(value.as_str())));
            let message = format!("stamp {} starting", env!("CARGO_PKG_VERSION"));
            let line = stamp::logging::json_line(
                Level::INFO,
                "stamp",
                &message,
                &fields.collect::<Vec<_>>(),
            );
            eprint!("{line}");
        }
    }
    let limits = app.config.connections;
    stamp::listener::serve(rocket, listener, limits)
        .await
        .map_err(|e| CliError::Usage(format!("server failed: {e}")))
}

/// What `serve` prints before it accepts connections (whatever the log level): where it listens,
/// who it is, where its state lives and which key signs; and a warning when, on loopback, the
/// issuer names another address than the one listened on (tokens would carry an `iss` that
/// clients cannot reach, and discovery would point elsewhere).
fn startup_summary(facts: &[(&str, String)]) -> String {
    let mut out = format!("stamp {}\n", env!("CARGO_PKG_VERSION"));
    for (name, value) in facts {
        match *name {
            "warning" => out.push_str(&format!("  warning: {value}\n")),
            _ => out.push_str(&format!("  {name:<14}{value}\n")),
        }
    }
    out
}

/// The lines of [`startup_summary`] as (name, value) pairs, also the fields of its JSON form.
fn startup_facts(
    app: &stamp::App,
    (address, port): (std::net::IpAddr, u16),
) -> Vec<(&'static str, String)> {
    let config = &app.config;
    let set = app.keys.current();
    let alg = config.keys.signing_alg;
    let active = set
        .active(alg)
        .map_or_else(|| "none yet".to_string(), |k| k.meta.kid.clone());
    let mut facts = vec![
        (
            "listening on",
            format!("http://{}", std::net::SocketAddr::from((address, port))),
        ),
        ("issuer", config.issuer.clone()),
        ("database", config.database_url.redacted()),
        ("key store", app.keys.describe_store()),
        ("signing with", format!("{alg}, kid {active}")),
    ];
    if let Some(warning) = issuer_mismatch(&config.issuer, address, port) {
        facts.push(("warning", warning));
    }
    facts
}

/// On a loopback setup (the issuer is a loopback URL), why `issuer` does not match the listen
/// address, if it does not. A public issuer in front of a server on loopback is the usual
/// reverse-proxy set-up and no mistake.
fn issuer_mismatch(issuer: &str, address: std::net::IpAddr, port: u16) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return None;
    }
    let issuer_port = url.port_or_known_default()?;
    if issuer_port != port {
        return Some(format!(
            "the issuer {issuer} names port {issuer_port}, but the server listens on {port}: \
             set `issuer` (ROCKET_ISSUER) to the URL clients use"
        ));
    }
    if !address.is_loopback() && !address.is_unspecified() {
        return Some(format!(
            "the issuer {issuer} is a loopback URL, but the server listens on {address} only: \
             set `issuer` (ROCKET_ISSUER) to the URL clients use"
        ));
    }
    None
}

/// `stamp init`: opens the deployment as `serve` does (creating what is missing) and says what
/// is there.
async fn init() -> Result<(), CliError> {
    let config = load_config()?;
    let existed = deployment_missing(&config).is_none();
    let app = stamp::App::open(config, Clock::system()).await?;
    let set = app.keys.current();
    let alg = app.config.keys.signing_alg;
    let kid = set.active(alg).map_or("none", |k| k.meta.kid.as_str());
    let state = if existed { "already there" } else { "created" };
    emit(&format!(
        "deployment {state}\n  database   {}\n  key store  {}\n  signing    {alg}, kid {kid}\n",
        app.config.database_url.redacted(),
        app.keys.describe_store(),
    ))
}

/// `--verbose`: which configuration file, database and key store a command works on (the
/// database password redacted), on stderr.
fn describe_configuration() {
    let figment = config::figment();
    let file = config::config_file(&figment).map_or_else(
        || "none (defaults and ROCKET_* variables)".into(),
        |path| path.display().to_string(),
    );
    eprintln!("configuration: {file}");
    if let Ok(config) = Config::from_figment(&figment) {
        eprintln!("database:      {}", config.database_url.redacted());
        match config.keys.store.kek() {
            Some(_) => eprintln!("key store:     the database (encrypted)"),
            None => eprintln!("key store:     {}", config.keys.dir.display()),
        }
    }
}

/// Why the configured deployment cannot be used by a command that must not create one: the
/// SQLite file, or the file key store's manifest, is missing. (A PostgreSQL database is made by
/// its operator; `serve` or `init` create the tables in it.)
fn deployment_missing(config: &Config) -> Option<String> {
    let url = config.database_url.expose_secret();
    if let Some(path) = store::sqlite_path(url)
        && !path.exists()
    {
        return Some(format!("no database at {}", path.display()));
    }
    let dir = &config.keys.dir;
    // Key files without their manifest are not "nothing here": the key store says which keys
    // would be orphaned, and refuses.
    let has_keys = || {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "pem"))
        })
    };
    if config.keys.store.kek().is_none() && !dir.join("manifest.json").exists() && !has_keys() {
        return Some(format!("no key set in {}", dir.display()));
    }
    None
}

/// The configuration of a command that works on an existing deployment: refused, naming the
/// path, when there is none there (a command run in the wrong folder, or a mistyped setting,
/// must not quietly make a second deployment that the server never reads).
fn load_deployment() -> Result<Config, CliError> {
    let config = load_config()?;
    match deployment_missing(&config) {
        None => Ok(config),
        Some(missing) => Err(CliError::Usage(format!(
            "{missing}: run `stamp init` to create a deployment there, or point the settings \
             (Rocket.toml, ROCKET_CONFIG, ROCKET_DATABASE_URL, ROCKET_KEYS_DIR) at the \
             server's; `stamp --verbose` shows which are used"
        ))),
    }
}

fn load_config() -> Result<Config, CliError> {
    Ok(Config::from_figment(&config::figment()).map_err(StartError::from)?)
}

/// The admin service on the configured database, as the `cli` actor sees it: the process edge,
/// so the system clock, and an audit write that fails is reported (the exit status says so).
async fn admin_service(config: &Config) -> Result<AdminService, CliError> {
    let db = store::open_with(config.database_url.expose_secret(), &config.database_pool).await?;
    Ok(AdminService::new(db, Clock::system(), AuditFailure::Fail))
}

async fn users(command: UsersCommand) -> Result<(), CliError> {
    let config = load_deployment()?;
    let admin = admin_service(&config).await?;
    match command {
        UsersCommand::Add {
            name,
            admin: is_admin,
            roles,
            password_stdin,
        } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let roles = roles
                .iter()
                .map(String::as_str)
                .chain(is_admin.then_some(ADMIN))
                .map(|role| Role::parse(role).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let password = read_new_password(&config, username.as_str(), password_stdin).await?;
            let hasher = PasswordHasher::new(1).await.map_err(StartError::from)?;
            let account = NewAccount {
                username,
                roles,
                password,
            };
            let user = admin.create_user(&Actor::Cli, &hasher, account).await?;
            emit(&format!(
                "created user {} (id {}, roles [{}])\n",
                user.username,
                user.id,
                user.roles.join(", ")
            ))?;
        }
        UsersCommand::List { json } => {
            let users: Vec<UserView> = admin
                .list_users()
                .await?
                .into_iter()
                .map(UserView::from)
                .collect();
            if json {
                emit(&to_json(&users)?)?;
            } else {
                emit(&user_table(&users))?;
            }
        }
        UsersCommand::Show { name, json } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let user = UserView::from(admin.user(UserRef::Name(&username)).await?);
            if json {
                emit(&to_json(&user)?)?;
            } else {
                emit(&user_details(&user))?;
            }
        }
        UsersCommand::Enable { name } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let update = UserUpdate {
                disabled: Some(false),
                ..UserUpdate::default()
            };
            let user = admin
                .update_user(&Actor::Cli, UserRef::Name(&username), update)
                .await?;
            emit(&format!("enabled user {}\n", user.username))?;
        }
        UsersCommand::Disable { name } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let user = admin.disable_user(&Actor::Cli, &username).await?;
            emit(&format!("disabled user {}\n", user.username))?;
        }
        UsersCommand::Delete { name, yes } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            if !yes {
                return Err(CliError::Usage(format!(
                    "deleting {} cannot be undone: pass --yes",
                    username.as_str()
                )));
            }
            let user = admin
                .delete_user(&Actor::Cli, UserRef::Name(&username))
                .await?;
            emit(&format!(
                "deleted user {} (id {}) and every refresh token they held\n",
                user.username, user.id
            ))?;
        }
        UsersCommand::Roles { name, roles, clear } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            if roles.is_empty() && !clear {
                return Err(CliError::Usage(
                    "name the roles, or pass --clear for none".into(),
                ));
            }
            let roles = roles
                .iter()
                .map(|role| Role::parse(role).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let update = UserUpdate {
                roles: Some(roles),
                ..UserUpdate::default()
            };
            let user = admin
                .update_user(&Actor::Cli, UserRef::Name(&username), update)
                .await?;
            emit(&format!(
                "roles of {}: [{}]\n",
                user.username,
                user.roles.join(", ")
            ))?;
        }
        UsersCommand::RevokeTokens { name } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let user = admin
                .revoke_user_tokens(&Actor::Cli, UserRef::Name(&username))
                .await?;
            emit(&format!(
                "revoked every refresh token of {} (token version {})\n",
                user.username, user.token_version
            ))?;
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let username = Username::parse(&name).map_err(CliError::Usage)?;
            let password = read_new_password(&config, username.as_str(), password_stdin).await?;
            let hasher = PasswordHasher::new(1).await.map_err(StartError::from)?;
            let user = admin
                .reset_password(&Actor::Cli, &hasher, UserRef::Name(&username), password)
                .await?;
            emit(&format!(
                "set the password of {}; every session ended (token version {})\n",
                user.username, user.token_version
            ))?;
        }
    }
    Ok(())
}

/// Prints the audit events matching `filter`, newest first.
async fn audit(filter: &AuditFilter, limit: u32, json: bool) -> Result<(), CliError> {
    let config = load_deployment()?;
    let admin = admin_service(&config).await?;
    let page = admin.query_audit(filter, limit, None).await?;
    if json {
        return emit(&to_json(&page.events)?);
    }
    let header = ["time", "actor", "action", "subject", "detail"];
    let rows: Vec<[String; 5]> = page
        .events
        .iter()
        .map(|e| {
            [
                rfc3339(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone().unwrap_or_else(|| "-".to_string()),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_string);
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    emit(&out)
}

/// A `--since` time: unix seconds, or RFC 3339 in UTC (`2026-01-31T12:00:00Z`).
fn parse_time(raw: &str) -> Result<i64, CliError> {
    if let Ok(unix) = raw.parse::<i64>() {
        return Ok(unix);
    }
    let bad = || {
        CliError::Usage(format!(
            "invalid time {raw:?}: use unix seconds or RFC 3339 UTC like 2026-01-31T12:00:00Z"
        ))
    };
    let b = raw.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, CliError> {
        let part = &raw[range];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return Err(bad());
    }
    // Days since the epoch from a civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + hh * 3600 + mm * 60 + ss;
    if rfc3339(unix) != raw {
        return Err(bad());
    }
    Ok(unix)
}

/// Writes `text` to standard output; a closed pipe (`| head -1`) ends the command quietly
/// ([`CliError::ClosedOutput`]) instead of the panic `println!` would raise.
fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::ClosedOutput),
        Err(e) => Err(CliError::Usage(format!("writing to standard output: {e}"))),
    }
}

/// `value` as one pretty-printed JSON document with a final newline.
fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|json| json + "\n")
        .map_err(|e| CliError::Usage(format!("cannot write JSON: {e}")))
}

/// Users as a table with aligned columns.
fn user_table(users: &[UserView]) -> String {
    let header = ["username", "id", "state", "created", "roles"];
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|u| {
            [
                u.username.clone(),
                u.id.clone(),
                state(u.disabled).to_string(),
                u.created_at.clone(),
                u.roles.join(","),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let [name, id, state, created, roles] = row;
        let _ = writeln!(
            out,
            "{name:<w0$}  {id:<w1$}  {state:<w2$}  {created:<w3$}  {roles}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    }
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// One user, a field a line.
fn user_details(user: &UserView) -> String {
    format!(
        "username:      {}\nid:            {}\nstate:         {}\nroles:         {}\n\
         created:       {}\ntoken version: {}\n",
        user.username,
        user.id,
        state(user.disabled),
        if user.roles.is_empty() {
            "-".to_string()
        } else {
            user.roles.join(",")
        },
        user.created_at,
        user.token_version
    )
}

fn state(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "enabled" }
}

async fn clients(command: ClientsCommand) -> Result<(), CliError> {
    let config = load_deployment()?;
    let admin = admin_service(&config).await?;
    match command {
        ClientsCommand::Add {
            id,
            scopes,
            public,
            redirect_uris,
            grants,
            alg,
            third_party,
            post_logout_redirect_uris,
        } => {
            let id = ClientId::parse(&id).map_err(CliError::Usage)?;
            let post_logout_redirect_uris = post_logout_redirect_uris
                .iter()
                .map(|uri| RedirectUri::parse(uri).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let scopes = scopes
                .iter()
                .map(|scope| Scope::parse(scope).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let redirect_uris = redirect_uris
                .iter()
                .map(|uri| RedirectUri::parse(uri).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let grants = grants
                .iter()
                .map(|grant| GrantType::parse(grant).map_err(CliError::Usage))
                .collect::<Result<Vec<_>, _>>()?;
            let alg = alg
                .map(|a| a.parse::<Alg>())
                .transpose()
                .map_err(|e| CliError::Usage(format!("{e} (use ES256 or RS256)")))?;
            let algs: Vec<Alg> = std::iter::once(config.keys.signing_alg)
                .chain(alg)
                .collect();
            let keys = key_manager(&config, &algs).await?;
            let new = NewServiceClient {
                id,
                scopes,
                alg,
                public,
                grants,
                redirect_uris,
                first_party: !third_party,
                post_logout_redirect_uris,
            };
            let (client, secret) = admin.add_client(&Actor::Cli, &keys, new).await?;
            let grants: Vec<&str> = client.grants.iter().map(|g| g.as_str()).collect();
            let Some(secret) = secret else {
                println!(
                    "created public client {} (scopes [{}], grants [{}])",
                    client.id,
                    client.scopes.join(", "),
                    grants.join(", ")
                );
                return Ok(());
            };
            eprintln!(
                "created client {} (scopes [{}], grants [{}]); its secret follows and is shown \
                 only this once:",
                client.id,
                client.scopes.join(", "),
                grants.join(", ")
            );
            println!("{}", secret.expose());
        }
        ClientsCommand::List { json } => {
            let clients = admin.list_clients().await?;
            if json {
                return print_json(&clients);
            }
            emit(&client_table(&clients))?;
        }
        ClientsCommand::Show { id, json } => {
            let client = admin.client(&id).await?;
            if json {
                return print_json(&client);
            }
            emit(&client_details(&client))?;
        }
        ClientsCommand::Enable { id } => {
            let client = admin.enable_client(&Actor::Cli, &id).await?;
            println!("enabled client {}", client.id);
        }
        ClientsCommand::Delete { id, yes } => {
            if !yes {
                return Err(CliError::Usage(format!(
                    "deleting client {id} revokes its refresh tokens; confirm with --yes"
                )));
            }
            admin.delete_client(&Actor::Cli, &id).await?;
            println!("deleted client {id}");
        }
        ClientsCommand::RotateSecret { id, overlap } => {
            let (client, secret) = admin
                .rotate_client_secret(&Actor::Cli, &id, overlap)
                .await?;
            match overlap.filter(|secs| *secs > 0) {
                Some(secs) => eprintln!(
                    "new secret for client {}; the old one stays valid for {secs} seconds. The \
                     new secret follows and is shown only this once:",
                    client.id
                ),
                None => eprintln!(
                    "new secret for client {}; the old one no longer works. The new secret \
                     follows and is shown only this once:",
                    client.id
                ),
            }
            emit(&format!("{}\n", secret.expose()))?;
        }
        ClientsCommand::Disable { id } => {
            let client = admin.disable_client(&Actor::Cli, &id).await?;
            println!("disabled client {}", client.id);
        }
    }
    Ok(())
}

/// Prints `value` as pretty JSON and a newline.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("encoding JSON: {e}")))?;
    emit(&format!("{text}\n"))
}

/// The clients as a table with aligned columns.
fn client_table(clients: &[store::Client]) -> String {
    let rows: Vec<[String; 8]> = clients
        .iter()
        .map(|c| {
            [
                c.id.clone(),
                client_state(c).into(),
                client_kind(c).into(),
                c.alg.map_or("-", |a| a.as_str()).into(),
                or_dash(client_grants(c).join(",")),
                or_dash(c.scopes.join(" ")),
                rfc3339(c.created_at),
                or_dash(c.redirect_uris.join(" ")),
            ]
        })
        .collect();
    let header = [
        "id",
        "state",
        "type",
        "alg",
        "grants",
        "scopes",
        "created",
        "redirect_uris",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One client, a field a line.
fn client_details(c: &store::Client) -> String {
    let mut fields = vec![
        ("id", c.id.clone()),
        ("state", client_state(c).into()),
        ("type", client_kind(c).into()),
        ("alg", c.alg.map_or("-", |a| a.as_str()).into()),
        ("grants", or_dash(client_grants(c).join(" "))),
        ("scopes", or_dash(c.scopes.join(" "))),
        ("redirect_uris", or_dash(c.redirect_uris.join(" "))),
        ("party", client_party(c).into()),
        (
            "post_logout_redirect_uris",
            or_dash(c.post_logout_redirect_uris.join(" ")),
        ),
        ("created", rfc3339(c.created_at)),
    ];
    if let Some((_, until)) = c.previous_secret {
        fields.push(("old secret valid until", rfc3339(until)));
    }
    fields
        .iter()
        .map(|(name, value)| format!("{:<23} {value}\n", format!("{name}:")))
        .collect()
}

fn client_state(c: &store::Client) -> &'static str {
    if c.disabled { "disabled" } else { "enabled" }
}

fn client_party(c: &store::Client) -> &'static str {
    if c.first_party {
        "first-party"
    } else {
        "third-party (consent screen)"
    }
}

fn client_kind(c: &store::Client) -> &'static str {
    if c.public { "public" } else { "confidential" }
}

fn client_grants(c: &store::Client) -> Vec<&'static str> {
    c.grants.iter().map(|g| g.as_str()).collect()
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// A new password from stdin (`--password-stdin`) or an interactive prompt without echo,
/// checked against the configured password policy (`username` counts as guessable).
async fn read_new_password(
    config: &Config,
    username: &str,
    from_stdin: bool,
) -> Result<Password, CliError> {
    let raw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password("password: ").map_err(|e| CliError::Usage(e.to_string()))?;
        let again =
            rpassword::prompt_password("again: ").map_err(|e| CliError::Usage(e.to_string()))?;
        if first != again {
            return Err(CliError::Usage("the passwords differ".into()));
        }
        first
    } else {
        return Err(CliError::Usage(
            "no terminal to prompt on: pass --password-stdin".into(),
        ));
    };
    config
        .password_policy
        .check(raw, &[username])
        .await
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// The key set for `algs`, opened as the server does ([`KeyManager::open_for`]).
async fn key_manager(config: &Config, algs: &[Alg]) -> Result<KeyManager, CliError> {
    let store = stamp::open_key_store(config).await?;
    let now = Clock::system().now();
    let instance = &config.instance_name;
    let manager = KeyManager::open_for(store, algs, config.keys.lifecycle, now, instance)
        .await
        .map_err(StartError::from)?;
    Ok(manager)
}

/// `stamp keys rewrap`: every key under the first KEK, reported by kid.
async fn rewrap() -> Result<(), CliError> {
    let config = load_config()?;
    let Some(kek) = config.keys.store.kek() else {
        return Err(CliError::Usage(
            "keys rewrap works on the database key store (key_store = \"database\"); the file \
             key store is not encrypted"
                .into(),
        ));
    };
    let store =
        store::PgStore::open_with(config.database_url.expose_secret(), &config.database_pool)
            .await?;
    let done = stamp::keys::PgKeyStore::new(store.pool().clone(), kek.clone())
        .rewrap()
        .await
        .map_err(StartError::from)?;
    let mut out = String::new();
    for kid in &done.rewrapped {
        let _ = writeln!(out, "rewrapped {kid}");
    }
    let _ = writeln!(
        out,
        "{} key(s) rewrapped, {} already under the first key-encryption key",
        done.rewrapped.len(),
        done.current
    );
    emit(&out)
}

/// `stamp migrate --from sqlite://… --to postgres://…`.
async fn migrate(from: &str, to: &str) -> Result<(), CliError> {
    use rocket::figment::providers::Serialized;

    // The target's settings: the database key store on `to`, so the KEK is read and checked
    // as the server will read it.
    let figment = config::figment()
        .merge(Serialized::global("database_url", to))
        .merge(Serialized::global("key_store", "database"));
    let config = Config::from_figment(&figment).map_err(StartError::from)?;
    let Some(kek) = config.keys.store.kek() else {
        return Err(CliError::Usage("no key-encryption key".into()));
    };
    let moved =
        stamp::migrate::sqlite_to_postgres(from, to, &config.keys.dir, kek, &config.database_pool)
            .await
            .map_err(|e| CliError::Usage(stamp::error::error_chain(&e)))?;
    let mut out = String::new();
    for (table, rows) in &moved.rows {
        let _ = writeln!(out, "{table}: {rows} row(s)");
    }
    let _ = writeln!(
        out,
        "signing keys: {} (encrypted under the KEK)",
        moved.keys
    );
    emit(&out)
}

/// Key commands work on the store directly; a running server picks the change up within a
/// quarter of a second with the file key store (it watches the manifest), or at once through
/// `NOTIFY` with the database key store (the store's generation check keeps both from losing a
/// change).
async fn keys(command: KeysCommand) -> Result<(), CliError> {
    if matches!(command, KeysCommand::Rewrap) {
        return rewrap().await;
    }
    let config = load_deployment()?;
    let manager = match command {
        // Listing reads: nothing is published or cleaned up.
        KeysCommand::List { .. } => {
            let store = stamp::open_key_store(&config).await?;
            let alg = config.keys.signing_alg;
            let lifecycle = config.keys.lifecycle;
            KeyManager::open_existing(store, alg, lifecycle, &config.instance_name)
                .await
                .map_err(StartError::from)?
        }
        _ => key_manager(&config, &[config.keys.signing_alg]).await?,
    };
    let admin = admin_service(&config).await?;
    let set = match command {
        KeysCommand::List { json: true } => {
            return print_json(&admin.list_keys(&manager).manifest().keys);
        }
        KeysCommand::List { json: false } => admin.list_keys(&manager),
        KeysCommand::Rotate { alg, force } => {
            let alg = match alg {
                Some(name) => name
                    .parse::<Alg>()
                    .map_err(|e| CliError::Usage(e.to_string()))?,
                None => config.keys.signing_alg,
            };
            admin
                .rotate_keys(&Actor::Cli, &manager, RotateOptions { alg, force }, None)
                .await?
        }
        KeysCommand::Revoke { kid } => admin.revoke_key(&Actor::Cli, &manager, &kid).await?,
        KeysCommand::Rewrap => return rewrap().await,
    };
    let mut out = format!(
        "{:<43}  {:<5}  {:<7}  {:<20}  removal\n",
        "kid", "alg", "state", "created"
    );
    for key in &set.manifest().keys {
        let removal = key.remove_after.map_or_else(|| "-".into(), rfc3339);
        out.push_str(&format!(
            "{:<43}  {:<5}  {:<7}  {:<20}  {}\n",
            key.kid,
            key.alg,
            key.state,
            rfc3339(key.created_at),
            removal
        ));
    }
    emit(&out)
}

fn decode(token: &str) -> Result<(), CliError> {
    let jwt = dangerous::decode_unverified(token)
        .map_err(|e| CliError::Usage(format!("not a JWT: {e}")))?;
    eprintln!("WARNING: decoded WITHOUT verifying the signature; do not trust these claims.");
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    emit(&format!(
        "header:\n{}\nclaims:\n{}\n",
        pretty(&jwt.header),
        pretty(&jwt.claims)
    ))
}

/// The token argument of `stamp token`: itself, or for `-` the first line of standard input.
fn read_token(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the token from stdin: {e}")))?;
    let token = line.trim();
    if token.is_empty() {
        return Err(CliError::Usage("no token on standard input".into()));
    }
    Ok(token.to_string())
}

/// `stamp token verify`: stamp::verify with default rules, keys found through discovery; the
/// issuer and audience default to the configured ones.
async fn verify_token(
    issuer: Option<String>,
    audience: Option<String>,
    token: &str,
) -> Result<(), CliError> {
    let (issuer, audience) = match (issuer, audience) {
        (Some(issuer), Some(audience)) => (issuer, audience),
        (issuer, audience) => {
            let config = load_config()?;
            (
                issuer.unwrap_or(config.issuer),
                audience.unwrap_or(config.audience),
            )
        }
    };
    let verifier = stamp::verify::Verifier::for_issuer(&issuer, &audience)
        .map_err(|e| CliError::Usage(format!("invalid token: {e}")))?;
    let claims = verifier
        .verify(token.trim(), Clock::system().now())
        .await
        .map_err(|e| CliError::Usage(format!("invalid token: {e}")))?;
    eprintln!("valid: signature, issuer, audience {audience:?}, typ, exp and nbf checked");
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(&claims).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::issuer_mismatch;

    #[test]
    fn a_loopback_issuer_must_name_the_listen_port_and_a_reachable_address() {
        let lo = "127.0.0.1".parse().unwrap();
        let any = "0.0.0.0".parse().unwrap();
        let lan = "192.168.1.5".parse().unwrap();
        assert_eq!(issuer_mismatch("http://127.0.0.1:8000", lo, 8000), None);
        assert_eq!(issuer_mismatch("http://localhost:8000", any, 8000), None);
        assert_eq!(issuer_mismatch("http://[::1]:8000", lo, 8000), None);
        let port = issuer_mismatch("http://127.0.0.1:8000", lo, 9000).unwrap();
        assert!(
            port.contains("port 8000") && port.contains("9000"),
            "{port}"
        );
        assert!(
            issuer_mismatch("http://localhost", lo, 8000).is_some(),
            "port 80"
        );
        assert!(issuer_mismatch("http://127.0.0.1:8000", lan, 8000).is_some());
        // Behind a reverse proxy on the same host: a public issuer, a loopback listener.
        assert_eq!(issuer_mismatch("https://auth.example.com", lo, 8000), None);
    }
}
