//! `stamp apis …`: the API registry from the command line (a module of the `stamp` binary, next
//! to `stamp clients …`, whose helpers it uses).

use clap::Subcommand;

use stamp::admin::{Actor, ApiUpdate, NewResourceServer};
use stamp::store::{Api, ApiName, ClientId, ResourceId, Scope};

use crate::{CliError, admin_service, emit, load_deployment, or_dash, print_json};

#[derive(Subcommand)]
pub enum ApisCommand {
    /// Register an API (a resource server): tokens requested with `resource=IDENTIFIER` carry
    /// it as their audience.
    Add {
        /// A short name for the API (a-z 0-9 . _ : -), used by the other commands.
        id: String,
        /// The audience: an absolute URI, e.g. https://orders.example.com.
        #[arg(long)]
        identifier: String,
        /// A display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// A scope the API defines (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List the registered APIs.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one API.
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change an API's name or the scopes it defines (the identifier never changes).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// The scopes it defines, replacing the current ones (repeatable).
        #[arg(long = "scope")]
        scopes: Option<Vec<String>>,
    },
    /// Delete an API: `resource=` naming it is refused, its refresh tokens stop working, and
    /// introspection calls its access tokens inactive.
    Delete {
        id: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn apis(command: ApisCommand) -> Result<(), CliError> {
    let config = load_deployment()?;
    let admin = admin_service(&config).await?;
    match command {
        ApisCommand::Add {
            id,
            identifier,
            name,
            scopes,
        } => {
            let id = ClientId::parse(&id).map_err(CliError::Usage)?;
            let new = NewResourceServer {
                identifier: ResourceId::parse(&identifier).map_err(CliError::Usage)?,
                name: ApiName::parse(name.as_deref().unwrap_or(id.as_str()))
                    .map_err(CliError::Usage)?,
                scopes: parse_scopes(&scopes)?,
                id,
            };
            let api = admin.add_api(&Actor::Cli, new, &config.audience).await?;
            println!(
                "registered api {} ({}, scopes [{}])",
                api.id,
                api.identifier,
                api.scopes.join(", ")
            );
        }
        ApisCommand::List { json } => {
            let apis = admin.list_apis().await?;
            if json {
                return print_json(&apis);
            }
            emit(&api_table(&apis))?;
        }
        ApisCommand::Show { id, json } => {
            let api = admin.api(&id).await?;
            if json {
                return print_json(&api);
            }
            emit(&format!(
                "id:         {}\nidentifier: {}\nname:       {}\nscopes:     {}\ncreated:    {}\n",
                api.id,
                api.identifier,
                api.name,
                or_dash(api.scopes.join(" ")),
                stamp::admin::rfc3339(api.created_at)
            ))?;
        }
        ApisCommand::Update { id, name, scopes } => {
            let update = ApiUpdate {
                name: name
                    .map(|n| ApiName::parse(&n).map_err(CliError::Usage))
                    .transpose()?,
                scopes: scopes.map(|s| parse_scopes(&s)).transpose()?,
            };
            if update.name.is_none() && update.scopes.is_none() {
                return Err(CliError::Usage(
                    "nothing to change: give --name or --scope".into(),
                ));
            }
            let api = admin.update_api(&Actor::Cli, &id, update).await?;
            println!("updated api {}", api.id);
        }
        ApisCommand::Delete { id, yes } => {
            if !yes {
                return Err(CliError::Usage(format!(
                    "deleting api {id} ends its refresh tokens; confirm with --yes"
                )));
            }
            admin.delete_api(&Actor::Cli, &id).await?;
            println!("deleted api {id}");
        }
    }
    Ok(())
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<Scope>, CliError> {
    scopes
        .iter()
        .map(|scope| Scope::parse(scope).map_err(CliError::Usage))
        .collect()
}

/// The APIs, a line each: id, identifier, scopes.
fn api_table(apis: &[Api]) -> String {
    let width = apis.iter().map(|a| a.id.len()).max().unwrap_or(0).max(2);
    let iwidth = apis
        .iter()
        .map(|a| a.identifier.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut out = format!("{:<width$}  {:<iwidth$}  scopes\n", "id", "identifier");
    for api in apis {
        let line = format!(
            "{:<width$}  {:<iwidth$}  {}",
            api.id,
            api.identifier,
            or_dash(api.scopes.join(" "))
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
