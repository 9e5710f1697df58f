//! The admin console's files: one HTML page, one stylesheet and one JavaScript module, written
//! by hand (no build step) and embedded in the binary. The console is a public client of the
//! issuer ([`crate::auth::console_client`]): it signs in through `/authorize` with PKCE and
//! calls the admin API with the access token, which it keeps in memory only.

/// One embedded file of the console: its name under `/console/`, media type and content.
pub struct Asset {
    /// The file name under `/console/` (`""` for the page itself).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the console.
pub const ASSETS: [Asset; 3] = [
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/app.css"),
    },
];

/// The Content-Security-Policy of every console answer: the console's own script, stylesheet
/// and API calls, nothing inline, no framing. `form-action 'self'` is safe here: the console's
/// forms are handled by script and never posted.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";
