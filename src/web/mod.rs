//! The issuer's own pages (the hosted login, consent and message pages of the OpenID Connect
//! provider) and their stylesheet, embedded in the binary. Templates are rendered by
//! `minijinja` with HTML autoescaping (every template name ends in `.html`) and strict
//! undefined values, so a missing variable is an error rather than an empty string. The pages
//! use no JavaScript and no external assets: the Content-Security-Policy the routes send
//! allows nothing but this stylesheet.

pub mod console;

use minijinja::{Environment, UndefinedBehavior, context};

use crate::oidc::{ConsentPage, LoginPage, LoginProblem};

/// The stylesheet, served at `/assets/stamp.css`.
pub const STYLESHEET: &str = include_str!("templates/stamp.css");

const TEMPLATES: [(&str, &str); 5] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("message.html", include_str!("templates/message.html")),
    ("logout.html", include_str!("templates/logout.html")),
];

/// The parsed templates, built once at start.
pub struct Pages {
    env: Environment<'static>,
    issuer_name: String,
}

/// A template that failed to parse or render (a bug of this crate, caught by the tests).
#[derive(Debug, thiserror::Error)]
#[error("page template: {0}")]
pub struct PageError(#[from] minijinja::Error);

impl Pages {
    /// Parses every template; `issuer` names the service at the top of each page.
    pub fn new(issuer: &str) -> Result<Pages, PageError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        let issuer_name = url::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| issuer.to_string());
        Ok(Pages { env, issuer_name })
    }

    /// The login form.
    pub fn login(&self, page: &LoginPage) -> Result<String, PageError> {
        let problem = page.problem.as_ref().map(|p| match p {
            LoginProblem::WrongPassword => "Wrong username or password.".to_string(),
            LoginProblem::Throttled { retry_after } => {
                format!("Too many failed sign-ins. Try again in {retry_after} seconds.")
            }
            LoginProblem::Busy { .. } => {
                "Too many sign-ins at once. Try again in a moment.".to_string()
            }
            LoginProblem::Invalid(message) => message.clone(),
        });
        Ok(self.env.get_template("login.html")?.render(context! {
            issuer_name => self.issuer_name.as_str(),
            client_id => page.client_id.as_str(),
            request_id => page.ticket.request_id.as_str(),
            csrf => page.ticket.csrf.as_str(),
            username => page.username.clone().unwrap_or_default(),
            problem => problem,
        })?)
    }

    /// The consent form.
    pub fn consent(&self, page: &ConsentPage) -> Result<String, PageError> {
        let scopes: Vec<String> = page
            .scope
            .iter()
            .filter(|s| s.as_str() != "openid")
            .cloned()
            .collect();
        Ok(self.env.get_template("consent.html")?.render(context! {
            issuer_name => self.issuer_name.as_str(),
            client_id => page.client_id.as_str(),
            request_id => page.ticket.request_id.as_str(),
            csrf => page.ticket.csrf.as_str(),
            scopes => scopes,
        })?)
    }

    /// The sign-out confirmation asked for when an application names no `id_token_hint`: a
    /// form that posts the request back with `confirm`, which only this browser's page has.
    pub fn confirm_logout(
        &self,
        confirm: &str,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<String, PageError> {
        Ok(self.env.get_template("logout.html")?.render(context! {
            issuer_name => self.issuer_name.as_str(),
            confirm => confirm,
            client_id => client_id,
            post_logout_redirect_uri => post_logout_redirect_uri,
            state => state,
        })?)
    }

    /// A page with a heading and a message (errors are announced to screen readers).
    pub fn message(&self, heading: &str, message: &str, alert: bool) -> Result<String, PageError> {
        Ok(self.env.get_template("message.html")?.render(context! {
            issuer_name => self.issuer_name.as_str(),
            heading => heading,
            message => message,
            alert => alert,
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::FormTicket;

    fn ticket() -> FormTicket {
        FormTicket {
            request_id: "r1".into(),
            csrf: "c1".into(),
            browser: "b".into(),
            redirect_uri: "https://app.example/cb".into(),
        }
    }

    #[test]
    fn pages_render_and_escape() {
        let pages = Pages::new("https://id.example").unwrap();
        let html = pages
            .login(&LoginPage {
                ticket: ticket(),
                client_id: "bank".into(),
                username: Some("<script>alert(1)</script>".into()),
                problem: Some(LoginProblem::WrongPassword),
            })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains(r#"name="csrf" value="c1""#));
        assert!(html.contains(r#"role="alert""#));
        assert!(html.contains("id.example"));
        let consent = pages
            .consent(&ConsentPage {
                ticket: ticket(),
                client_id: "shop".into(),
                scope: vec!["openid".into(), "profile".into()],
            })
            .unwrap();
        assert!(consent.contains("<li>profile</li>"));
        assert!(!consent.contains("<li>openid</li>"));
        let message = pages.message("Oops", "a & b", true).unwrap();
        assert!(message.contains("a &amp; b"));
    }
}
