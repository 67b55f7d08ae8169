//! Scenarios about HTTP statuses: the baseline reply, 429 and 503 with
//! every form of `Retry-After`, 5xx with HTML, empty, JSON and huge bodies,
//! and the 4xx statuses that must not be retried.

use std::time::{Duration, SystemTime};

use pae_core::{ChatModel, ProviderErrorKind as Kind};

use crate::faults::runner::{ATTEMPTS, BACKOFF};
use crate::faults::runner::{Check, OK, Runner, SLACK, body_of, ensure, plan};
use crate::faults::{Action, Fault, ModelTarget, WireFormat, http_date, response};
use crate::text::kind_name;

impl<W, F, M> Runner<'_, W, F>
where
    W: WireFormat,
    F: Fn(&ModelTarget) -> M,
    M: ChatModel,
{
    pub(super) async fn reply(&self) -> Check {
        let run = self.chat(plan(vec![], self.ok())).await;
        self.replied(&run, OK, 1)
    }

    pub(super) async fn rate_limited_without_retry_after(&self) -> Check {
        let limited = self.status(429, &[], &self.wire().error_body("Rate limit reached"));
        let run = self.chat(plan(vec![limited], self.ok())).await;
        let detail = self.replied(&run, OK, 2)?;
        Self::within(run.elapsed, BACKOFF, BACKOFF + SLACK)?;
        Ok(detail)
    }

    pub(super) async fn retry_after_seconds(&self) -> Check {
        let limited = self.status(
            429,
            &[("retry-after", "1")],
            &self.wire().error_body("Rate limit reached"),
        );
        let run = self.chat(plan(vec![limited], self.ok())).await;
        let detail = self.replied(&run, OK, 2)?;
        Self::within(
            run.elapsed,
            Duration::from_secs(1),
            Duration::from_secs(1) + SLACK,
        )?;
        Ok(detail)
    }

    pub(super) async fn retry_after_http_date(&self) -> Check {
        // Whole seconds: the wait is between 1 and 2 s.
        let date = http_date(SystemTime::now() + Duration::from_secs(2));
        let busy = self.status(
            503,
            &[("retry-after", &date)],
            &self.wire().error_body("busy"),
        );
        let run = self.chat(plan(vec![busy], self.ok())).await;
        let detail = self.replied(&run, OK, 2)?;
        Self::within(
            run.elapsed,
            Duration::from_millis(900),
            Duration::from_secs(2) + SLACK,
        )?;
        Ok(format!("{detail} (Retry-After: {date})"))
    }

    pub(super) async fn retry_after_zero(&self) -> Check {
        let limited = self.status(
            429,
            &[("retry-after", "0")],
            &self.wire().error_body("again"),
        );
        let run = self.chat(plan(vec![limited], self.ok())).await;
        let detail = self.replied(&run, OK, 2)?;
        Self::within(run.elapsed, Duration::ZERO, SLACK)?;
        Ok(detail)
    }

    pub(super) async fn retry_after_huge(&self) -> Check {
        let limited = self.status(
            429,
            &[("retry-after", "86400")],
            &self.wire().error_body("Daily quota exceeded"),
        );
        let run = self.chat(plan(vec![], limited)).await;
        let error = self.http_error(&run, 429, 1)?;
        ensure(
            error.retry_after() == Some(Duration::from_secs(86_400)),
            || format!("retry_after {:?}, expected 86400 s", error.retry_after()),
        )?;
        Self::within(run.elapsed, Duration::ZERO, SLACK)?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn retry_after_garbage(&self) -> Check {
        let limited = self.status(
            429,
            &[("retry-after", "soon, maybe")],
            &self.wire().error_body("Rate limit reached"),
        );
        let run = self.chat(plan(vec![], limited)).await;
        let error = self.http_error(&run, 429, ATTEMPTS)?;
        ensure(error.retry_after().is_none(), || {
            format!("retry_after {:?} from garbage", error.retry_after())
        })?;
        Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn service_unavailable_html(&self) -> Check {
        let page = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
        let fault = Fault::Write(response(503, &[("content-type", "text/html")], page));
        let run = self.chat(plan(vec![], fault)).await;
        let error = self.http_error(&run, 503, ATTEMPTS)?;
        ensure(body_of(error) == Some(page), || {
            format!("the body is {:?}, expected the page", body_of(error))
        })?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn bad_gateway_empty(&self) -> Check {
        let fault = Fault::Write(response(502, &[], ""));
        let run = self.chat(plan(vec![], fault)).await;
        let error = self.http_error(&run, 502, ATTEMPTS)?;
        ensure(body_of(error) == Some(""), || {
            format!("the body is {:?}, expected empty", body_of(error))
        })?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn internal_error_json(&self) -> Check {
        let body = self.wire().error_body("upstream exploded");
        let run = self.chat(plan(vec![], self.status(500, &[], &body))).await;
        let error = self.http_error(&run, 500, ATTEMPTS)?;
        ensure(body_of(error) == Some(body.as_str()), || {
            format!("the body is {:?}, expected {body:?}", body_of(error))
        })?;
        Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn bad_request(&self) -> Check {
        let body = self.wire().error_body("'messages' must not be empty");
        let run = self.chat(plan(vec![], self.status(400, &[], &body))).await;
        let error = self.http_error(&run, 400, 1)?;
        ensure(body_of(error) == Some(body.as_str()), || {
            format!("the body is {:?}, expected {body:?}", body_of(error))
        })?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn unauthorized(&self) -> Check {
        self.auth_error(401).await
    }

    pub(super) async fn forbidden(&self) -> Check {
        self.auth_error(403).await
    }

    /// HTTP `status` with a body echoing the key: not retried, key hidden.
    async fn auth_error(&self, status: u16) -> Check {
        let body = self.wire().error_body(&self.secret_message());
        let run = self
            .chat(plan(vec![], self.status(status, &[], &body)))
            .await;
        let error = self.http_error(&run, status, 1)?;
        ensure(!error.is_retryable(), || {
            "an auth error is retryable".into()
        })?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn model_not_found(&self) -> Check {
        let body = self.wire().error_body("model 'no-such-model' not found");
        let run = self.chat(plan(vec![], self.status(404, &[], &body))).await;
        let error = self.http_error(&run, 404, 1)?;
        ensure(
            body_of(error).is_some_and(|b| b.contains("not found")),
            || format!("the body is {:?}", body_of(error)),
        )?;
        Ok(Self::http_detail(&run, error))
    }

    pub(super) async fn huge_error_body(&self) -> Check {
        let body = format!("{{\"error\": \"{}\"}}", "x".repeat(16 << 20));
        let run = self.chat(plan(vec![], self.status(500, &[], &body))).await;
        let error = self.http_error(&run, 500, ATTEMPTS)?;
        let kept = body_of(error).unwrap_or_default();
        ensure(kept.len() <= 1 << 20 && body.starts_with(kept), || {
            format!(
                "kept {} bytes of the body; expected its beginning, at most 1 MiB",
                kept.len()
            )
        })?;
        Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK * 2)?;
        Ok(format!(
            "{}; {} body bytes kept",
            Self::http_detail(&run, error),
            body_of(error).map_or(0, str::len)
        ))
    }

    pub(super) async fn error_body_stalls(&self) -> Check {
        let head = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                    retry-after: 0\r\ncontent-length: 200\r\nconnection: close\r\n\r\n{\"error\":";
        let fault = Fault::Script(vec![Action::Write(head.as_bytes().to_vec()), Action::Stall]);
        let run = self.chat(plan(vec![], fault)).await;
        let error = self.typed_error(
            &run.result,
            run.attempts,
            &[Kind::ServerError, Kind::Timeout],
            Some(ATTEMPTS),
        )?;
        ensure(error.status().is_none_or(|s| s == 503), || {
            format!("HTTP {:?}, expected 503", error.status())
        })?;
        Self::within(
            run.elapsed,
            Duration::ZERO,
            self.timeout * ATTEMPTS as u32 + BACKOFF * 3 + SLACK,
        )?;
        Ok(format!(
            "{} after {} attempts, {:?}",
            kind_name(error),
            run.attempts,
            run.elapsed
        ))
    }
}
