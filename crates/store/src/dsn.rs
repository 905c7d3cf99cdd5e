//! Database locations as users write them (`sqlite://…`, a file path,
//! `postgres://user:password@host/db`), and how to show one in a message
//! without its password: connection URLs end up in errors and logs, the
//! password must not.

/// Which backend a location names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) fn backend(location: &str) -> Result<Backend, String> {
    let lower = location.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if lower.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if let Some((scheme, _)) = lower.split_once("://") {
        Err(format!(
            "unsupported database URL scheme '{scheme}': use a file path, sqlite://PATH or \
             postgres://USER@HOST/DB"
        ))
    } else {
        Ok(Backend::Sqlite)
    }
}

/// The URL with any password (in the user info or a `password=` query
/// parameter) replaced by `***`. Errs on the side of hiding: it never trusts
/// the URL to be well-formed, since a password may hold any character.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end);
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    redact_password_parameters(&format!("{head}{rest}"))
}

fn redact_password_parameters(url: &str) -> String {
    const KEY: &str = "password=";
    let lower = url.to_ascii_lowercase();
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY).map(|i| from + i) {
        let value_start = found + KEY.len();
        let value_end = url[value_start..]
            .find(['&', '#'])
            .map_or(url.len(), |i| value_start + i);
        if found > 0 && matches!(url.as_bytes()[found - 1], b'?' | b'&') {
            out.push_str(&url[copied..value_start]);
            out.push_str("***");
            copied = value_end;
        }
        from = value_end.max(value_start);
    }
    out.push_str(&url[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_userinfo_and_query() {
        assert_eq!(
            redact("postgres://sever:s3cr%40t@db.internal:5432/sever?sslmode=require"),
            "postgres://sever:***@db.internal:5432/sever?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/sever?user=a&password=hunter2&x=1"),
            "postgresql://db/sever?user=a&password=***&x=1"
        );
        assert_eq!(
            redact("postgres://a:b:c@h/d"),
            "postgres://a:***@h/d",
            "a colon inside the password"
        );
        assert_eq!(
            redact("postgres://u:pa/ss?w#rd@host/db"),
            "postgres://u:***@host/db",
            "a password that is not URL-escaped"
        );
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(redact("/var/lib/sever.db"), "/var/lib/sever.db");
    }

    #[test]
    fn backends_are_chosen_by_scheme_and_paths_mean_sqlite() {
        assert_eq!(backend("postgres://h/d"), Ok(Backend::Postgres));
        assert_eq!(backend("PostgreSQL://h/d"), Ok(Backend::Postgres));
        assert_eq!(backend("sqlite://x.db"), Ok(Backend::Sqlite));
        assert_eq!(backend("./data/sever.db"), Ok(Backend::Sqlite));
        let err = backend("mysql://h/d").unwrap_err();
        assert!(err.contains("'mysql'"), "{err}");
    }
}
