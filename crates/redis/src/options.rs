//! [`RedisOptions`]: where Redis is and how long bqai is willing to wait for it.

use std::time::Duration;

/// Connection, timeout and storage settings shared by every adapter of this crate
/// ([`crate::RedisCache`], [`crate::RedisRateLimiter`], [`crate::RedisConversationStore`]).
///
/// `Debug` prints the URL with its password redacted, so options can be logged.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://…` for TLS (rustls with the
    /// platform's root certificates) or `redis+unix:///path/to.sock`.
    pub url: String,
    /// Prepended to every key this crate writes (entries, tag sets, rate limiter state), so
    /// several deployments or test runs can share one Redis. Empty by default.
    pub namespace: String,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// How long opening a connection (TCP, TLS, AUTH) may take.
    pub connect_timeout: Duration,
    /// How long a call waits for a free pooled connection.
    pub wait_timeout: Duration,
    /// The deadline of every Redis command or script.
    pub command_timeout: Duration,
    /// Cache values longer than this many bytes are zstd-compressed.
    pub compress_threshold: usize,
    /// After a connection failure or timeout, calls fail at once for this long before one
    /// call probes Redis again (circuit breaker).
    pub retry_after_failure: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            namespace: String::new(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(500),
            compress_threshold: 4096,
            retry_after_failure: Duration::from_secs(2),
        }
    }
}

impl RedisOptions {
    /// Default options for `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The URL with any password (in the user part or the query string) replaced by `***`,
    /// fit for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &self.redacted_url())
            .field("namespace", &self.namespace)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("compress_threshold", &self.compress_threshold)
            .field("retry_after_failure", &self.retry_after_failure)
            .finish()
    }
}

/// Redacts the secrets a Redis URL can carry: the password in `user:password@` (or a lone
/// `secret@`, which some clients read as a password) and `password=`/`pass=` query parameters
/// (redis+unix URLs put the password there).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all; it might be a bare password pasted in the wrong place.
        return "<unparsable Redis URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("pass") || name.contains("token") || name.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_everywhere_a_url_can_hold_them() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://user:hunter2@host", "rediss://user:***@host"),
            ("redis://hunter2@host", "redis://***@host"),
            ("redis://u:p@ss:w@host/1", "redis://u:***@host/1"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("hunter2", "<unparsable Redis URL>"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let options = RedisOptions::with_url("redis://:hunter2@host");
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("redis://:***@host"), "{debug}");
    }
}
