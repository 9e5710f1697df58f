//! How a user is shown by the admin API and the CLI's `--json`: never the password hash.

use serde::Serialize;

use crate::store::User;

/// A user as the admin API and `stamp users list|show --json` present it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The same instant in Unix seconds.
    pub created_at_unix: i64,
    /// Bumped by every "log out everywhere": tokens issued under an older version are refused.
    pub token_version: i64,
    /// The e-mail address userinfo returns with the `email` scope, if one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            created_at: rfc3339(user.created_at),
            created_at_unix: user.created_at,
            id: user.id,
            username: user.username,
            roles: user.roles,
            disabled: user.disabled,
            token_version: user.token_version,
            email: user.email,
        }
    }
}

/// `unix` seconds as an RFC 3339 UTC timestamp (`1970-01-01T00:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since the epoch (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_are_shown_in_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
