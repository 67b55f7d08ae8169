//! Reading bodies within bounds: whole replies up to a size limit, error
//! bodies up to an excerpt within a wait, and the status check that turns
//! an error status into [`ProviderError::Http`].

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use pae_core::ProviderError;

use crate::limits::{ERROR_BODY_BYTES, ERROR_BODY_WAIT};
use crate::retry_after::retry_after;

/// A boxed stream of body bytes, as reqwest delivers them.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static>>;

/// The body of `response` as a [`ByteStream`], for streamed replies.
pub fn byte_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(response.bytes_stream())
}

/// At most `limit` bytes of a body as text, for the `body` of an error:
/// invalid UTF-8 replaced, a character split by the cut dropped. Adapters
/// use it so a huge or binary body never ends up whole in an error.
///
/// ```
/// use pae_http::body_excerpt;
/// assert_eq!(body_excerpt("aé".as_bytes(), 2), "a");
/// assert_eq!(body_excerpt(b"abc", 9), "abc");
/// ```
pub fn body_excerpt(bytes: &[u8], limit: usize) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned();
    if bytes.len() > limit {
        // The cut may have split a character into a replacement character.
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
    }
    text
}

/// [`ProviderError::InvalidResponse`] for `body`, keeping its first
/// [`ERROR_BODY_BYTES`].
pub fn invalid_response(body: &[u8], reason: impl Into<String>) -> ProviderError {
    ProviderError::InvalidResponse {
        body: body_excerpt(body, ERROR_BODY_BYTES),
        reason: reason.into(),
    }
}

/// The error for a body (or a line, or an event) above `limit` bytes,
/// keeping its beginning.
pub fn too_large(body: &[u8], limit: usize) -> ProviderError {
    invalid_response(
        body,
        format!("the response is larger than the limit of {limit} bytes"),
    )
}

/// Reads a whole body, refusing one above `limit` bytes with
/// [`too_large`] (at once when the declared length says so, else as soon
/// as the bytes read pass the limit).
///
/// # Errors
/// [`ProviderError::InvalidResponse`] for a body above the limit; what
/// `on_error` makes of a failure to read (see
/// [`transport_error`](crate::transport_error)).
pub async fn read_body(
    response: reqwest::Response,
    limit: usize,
    on_error: impl Fn(reqwest::Error) -> ProviderError,
) -> Result<Vec<u8>, ProviderError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large(&[], limit));
    }
    let mut body = Vec::new();
    let mut bytes = response.bytes_stream();
    while let Some(part) = bytes.next().await {
        body.extend_from_slice(&part.map_err(&on_error)?);
        if body.len() > limit {
            return Err(too_large(&body, limit));
        }
    }
    Ok(body)
}

/// [`ProviderError::Http`] for a response with an error status: its
/// status, `retry_after` as given, and what arrives of its body within
/// [`ERROR_BODY_WAIT`], up to [`ERROR_BODY_BYTES`]. The status is what
/// matters; a huge or stalled error body must not hold the caller.
pub async fn http_error(
    response: reqwest::Response,
    retry_after: Option<Duration>,
) -> ProviderError {
    let status = response.status().as_u16();
    let mut kept = Vec::new();
    let mut bytes = response.bytes_stream();
    let _ = tokio::time::timeout(ERROR_BODY_WAIT, async {
        while let Some(Ok(part)) = bytes.next().await {
            kept.extend_from_slice(&part);
            if kept.len() >= ERROR_BODY_BYTES {
                break;
            }
        }
    })
    .await;
    ProviderError::Http {
        status,
        body: body_excerpt(&kept, ERROR_BODY_BYTES),
        retry_after,
    }
}

/// The response when its status is a success; otherwise its
/// [`http_error`], with the wait of its `Retry-After` header.
///
/// # Errors
/// [`ProviderError::Http`] for an error status.
pub async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let wait = retry_after(response.headers());
    Err(http_error(response, wait).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        reqwest::Response::from(builder.body(body).unwrap())
    }

    fn no_transport_error(error: reqwest::Error) -> ProviderError {
        panic!("unexpected transport error {error}")
    }

    #[test]
    fn excerpts_are_bounded_and_lossy() {
        assert_eq!(body_excerpt("aé".as_bytes(), 2), "a");
        assert_eq!(body_excerpt(b"abc", 9), "abc");
        assert_eq!(body_excerpt(b"ab\xffc", 9), "ab\u{FFFD}c");
        assert_eq!(body_excerpt(b"abcdef", 3), "abc");
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_and_larger_ones_refused() {
        let body = read_body(response(200, &[], b"hello".to_vec()), 5, no_transport_error);
        assert_eq!(body.await.unwrap(), b"hello");
        let error = read_body(
            response(200, &[], b"hello!".to_vec()),
            5,
            no_transport_error,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, ProviderError::InvalidResponse { reason, .. } if reason.contains("limit of 5 bytes")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn error_statuses_keep_status_retry_after_and_a_bounded_body() {
        let ok = check_status(response(204, &[], Vec::new())).await;
        assert!(ok.is_ok());
        let error = check_status(response(
            429,
            &[("retry-after", "7")],
            b"slow down".to_vec(),
        ))
        .await
        .unwrap_err();
        assert!(
            matches!(&error, ProviderError::Http { status: 429, body, retry_after: Some(wait) }
                if body == "slow down" && *wait == Duration::from_secs(7)),
            "{error:?}"
        );
        let huge = vec![b'x'; ERROR_BODY_BYTES * 3];
        match check_status(response(500, &[], huge)).await {
            Err(ProviderError::Http {
                body, retry_after, ..
            }) => {
                assert_eq!(body.len(), ERROR_BODY_BYTES);
                assert_eq!(retry_after, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
