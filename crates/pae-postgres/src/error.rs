//! sqlx's errors as [`StoreError`]s: which failures are worth trying again
//! (a lost connection, a server restarting, a serialization conflict) and
//! which are not (a wrong password, a missing database).

use pae_core::StoreError;

/// SQLSTATE codes after which the same operation may succeed: the
/// connection exception class (08), the server shutting down or starting
/// (57P01–57P03), too many connections (53300), and conflicts that rolled
/// the transaction back (40001, 40P01).
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

/// Whether trying again may succeed.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// Maps a sqlx error: transient failures become transient backend errors.
pub(crate) fn error(what: &str, error: sqlx::Error) -> StoreError {
    let transient = is_transient(&error);
    StoreError::backend(what.to_owned(), error, transient)
}

/// A value that does not fit what the schema holds.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("{what}: {error}"))
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:***@{host}")
        }
        None => authority.to_owned(),
    };
    // Query parameters may carry a password too (`?password=`).
    let path = path.split('?').next().unwrap_or_default();
    format!("{scheme}://{authority}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/pae?sslmode=require&password=x"),
            "postgres://me:***@db:5432/pae"
        );
        assert_eq!(redact("postgres://db/pae"), "postgres://db/pae");
        assert_eq!(redact("nonsense"), "<not a URL>");
    }

    #[test]
    fn lost_connections_are_transient_and_wrong_settings_are_not() {
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::PoolClosed));
        for code in ["08006", "57P01", "40001"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["28P01", "3D000", "42P01", "23505"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
