//! Mapping reqwest's failures into [`ProviderError`].

use std::time::Duration;

use pae_core::ProviderError;

/// Maps a reqwest failure to a provider error: [`ProviderError::Timeout`]
/// (with `timeout`, or zero when none was set) for a time-out, else
/// [`ProviderError::Connection`] saying what was being done to `target`,
/// with the cause (its URL removed) as the source.
///
/// `target` goes into the message as given: pass a URL without
/// credentials (see [`redact_url`](crate::redact_url)).
pub fn transport_error(
    error: reqwest::Error,
    target: &str,
    timeout: Option<Duration>,
) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Timeout {
            after: timeout.unwrap_or_default(),
        };
    }
    let action = if error.is_connect() {
        "connecting to"
    } else if error.is_body() || error.is_decode() {
        "reading the response from"
    } else {
        "sending the request to"
    };
    ProviderError::connection(format!("{action} {target}"), error.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connections_name_the_target_not_the_url() {
        // Bind and drop a listener to get a port where nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/v1?key=secret"))
            .send()
            .await
            .unwrap_err();
        let mapped = transport_error(error, "the server", Some(Duration::from_secs(1)));
        assert_eq!(
            mapped.to_string(),
            "connection to the provider failed: connecting to the server"
        );
        let chain = std::error::Error::source(&mapped).map(ToString::to_string);
        assert!(!chain.unwrap_or_default().contains("secret"));
    }
}
