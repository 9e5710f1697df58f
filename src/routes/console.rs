//! The admin console at `/console/`: its page, script and stylesheet, embedded in the binary
//! ([`crate::web::console`]). Every answer carries the console's strict Content-Security-Policy,
//! `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` (the sign-in answer puts the
//! authorization code in the page's URL); `Cache-Control: no-cache` with a strong `ETag`, so a
//! browser revalidates (`304`) and an upgraded issuer is never mixed with a cached old script.

use std::io::Cursor;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::fairing::AdHoc;
use rocket::http::uri::Origin;
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rocket::{State, get, routes};
use sha2::{Digest, Sha256};

use crate::web::console::{ASSETS, Asset, CONTENT_SECURITY_POLICY};

use super::well_known::IfNoneMatch;

/// The console's files with their entity tags, computed once at start.
struct Files(Vec<(&'static Asset, String)>);

/// The console's routes.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("admin console", |rocket| async {
        let files = ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body.as_bytes());
                (
                    asset,
                    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..18])),
                )
            })
            .collect();
        rocket.manage(Files(files)).mount("/", routes![console])
    })
}

/// `/console/` and its files. Rocket's route paths cannot end in a slash and a trailing
/// `<rest..>` also matches `/console`, so the request's own path tells the page (`/console/`)
/// from the bare `/console`, which is sent to `/console/` so that the page's relative URLs
/// resolve.
#[get("/console/<rest..>")]
fn console<'r>(
    files: &'r State<Files>,
    uri: &Origin<'_>,
    rest: PathBuf,
    if_none_match: IfNoneMatch<'_>,
) -> Option<Answer<'r>> {
    let name = match rest.to_str()? {
        "" if !uri.path().ends_with('/') => {
            return Some(Answer::Moved(Box::new(Redirect::permanent("/console/"))));
        }
        name => name,
    };
    serve(files, name, &if_none_match).map(Answer::File)
}

/// A console file, or the redirect of `/console`.
#[derive(rocket::Responder)]
enum Answer<'r> {
    File(Served<'r>),
    Moved(Box<Redirect>),
}

fn serve<'r>(files: &'r Files, name: &str, if_none_match: &IfNoneMatch<'_>) -> Option<Served<'r>> {
    let (asset, etag) = files.0.iter().find(|(a, _)| a.name == name)?;
    Some(Served {
        asset,
        etag,
        fresh: if_none_match.matches(etag),
    })
}

/// One console file, or `304` when the browser's copy is current.
struct Served<'r> {
    asset: &'static Asset,
    etag: &'r str,
    fresh: bool,
}

impl<'r> Responder<'r, 'static> for Served<'_> {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response
            .header(Header::new(
                "Content-Security-Policy",
                CONTENT_SECURITY_POLICY,
            ))
            .header(Header::new("X-Frame-Options", "DENY"))
            .header(Header::new("Referrer-Policy", "no-referrer"))
            .header(Header::new("Cache-Control", "no-cache"))
            .header(Header::new("ETag", self.etag.to_string()));
        if self.fresh {
            response.status(Status::NotModified);
        } else {
            let body = self.asset.body;
            response
                .header(Header::new("Content-Type", self.asset.content_type))
                .sized_body(body.len(), Cursor::new(body));
        }
        response.ok()
    }
}
