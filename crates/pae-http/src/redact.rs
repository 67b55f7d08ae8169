//! Keeping credentials out of messages: an [`ApiKey`] that never prints,
//! scrubbing a key a server echoed back, and URLs without their user
//! information or query.

use std::fmt;

use pae_core::ProviderError;

/// What a removed secret is replaced with.
const REDACTED: &str = "<redacted>";

/// An API key. Its `Debug` output is redacted; [`scrub`](Self::scrub)
/// removes it from text a server sent back.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `<redacted>`.
    /// Keys shorter than 4 characters are left alone: replacing them would
    /// mangle ordinary text and hide nothing worth hiding.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() >= 4 {
            text.replace(self.0.as_str(), REDACTED)
        } else {
            text.to_owned()
        }
    }

    /// `error` with the key removed from every text that came from the
    /// server (an HTTP body, an unparsable body and its reason, the reason
    /// a stream broke), so that no path can show it.
    pub fn scrub_error(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Http {
                status,
                body,
                retry_after,
            } => ProviderError::Http {
                status,
                body: self.scrub(&body),
                retry_after,
            },
            ProviderError::InvalidResponse { body, reason } => ProviderError::InvalidResponse {
                body: self.scrub(&body),
                reason: self.scrub(&reason),
            },
            ProviderError::StreamInterrupted { reason, partial } => {
                ProviderError::StreamInterrupted {
                    reason: self.scrub(&reason),
                    partial,
                }
            }
            other => other,
        }
    }
}

/// A URL for messages: user name, password, query (which may carry a key,
/// `?api-key=…`) and fragment removed, without a trailing `/`. Text that is
/// not a URL becomes `<invalid URL>`.
///
/// ```
/// use pae_http::redact_url;
/// assert_eq!(redact_url("https://user:pw@example.com/v1/?key=k"), "https://example.com/v1");
/// ```
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => redact(&parsed),
        Err(_) => String::from("<invalid URL>"),
    }
}

/// [`redact_url`] for a parsed URL.
pub fn redact(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() || !url.username().is_empty() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url.set_query(None);
    url.set_fragment(None);
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = ApiKey::new("sk-very-secret-key");
        assert_eq!(format!("{key:?}"), "<redacted>");
        assert_eq!(key.expose(), "sk-very-secret-key");
    }

    #[test]
    fn scrub_removes_the_key_from_bodies() {
        let key = ApiKey::new("sk-abcdef");
        assert_eq!(
            key.scrub("Incorrect API key provided: sk-abcdef."),
            "Incorrect API key provided: <redacted>."
        );
        let error = key.scrub_error(ProviderError::StreamInterrupted {
            reason: "bad key sk-abcdef".into(),
            partial: "kept".into(),
        });
        assert_eq!(
            format!("{error:?}"),
            r#"StreamInterrupted { reason: "bad key <redacted>", partial: "kept" }"#
        );
        assert_eq!(ApiKey::new("abc").scrub("abc"), "abc", "too short to scrub");
    }

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            redact_url("https://user:hunter2@example.com/v1/"),
            "https://example.com/v1"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/v1?api-key=k#x"),
            "http://127.0.0.1:8080/v1"
        );
        assert_eq!(redact_url("not a url"), "<invalid URL>");
    }
}
