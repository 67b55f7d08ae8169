//! Scenarios about streamed replies: events split byte by byte, cut,
//! stalled (at the start, midway, behind keep-alives), error events, error
//! statuses, bodies that are not a stream, and a whole reply instead of a
//! stream.

use std::time::Duration;

use pae_core::{ChatModel, ProviderError, ProviderErrorKind as Kind};

use crate::faults::runner::{ATTEMPTS, BACKOFF};
use crate::faults::runner::{
    BAD_UTF8_MARK, Check, OK, REPORTED, Runner, SLACK, STREAM_PARTS, all_text, ensure,
    expected_attempts, plan,
};
use crate::faults::{Action, Fault, LAST_CHUNK, ModelTarget, WireFormat, chunk, response};
use crate::text::{describe, kind_name};

impl<W, F, M> Runner<'_, W, F>
where
    W: WireFormat,
    F: Fn(&ModelTarget) -> M,
    M: ChatModel,
{
    pub(super) async fn stream_reply(&self) -> Check {
        let run = self
            .stream(plan(vec![], self.stream_fault(self.full_stream())))
            .await;
        self.streamed(&run, &STREAM_PARTS.concat(), 1)
    }

    pub(super) async fn stream_split_bytes(&self) -> Check {
        let body = self.full_stream();
        let mut actions = vec![Action::Write(self.stream_head())];
        for byte in body.as_bytes() {
            actions.push(Action::Write(chunk([*byte])));
            actions.push(Action::Pause(Duration::from_millis(1)));
        }
        actions.push(Action::Write(LAST_CHUNK.to_vec()));
        let run = self.stream(plan(vec![], Fault::Script(actions))).await;
        self.streamed(&run, &STREAM_PARTS.concat(), 1)
            .map(|detail| format!("{} one-byte writes; {detail}", body.len()))
    }

    pub(super) async fn stream_cut_mid_event(&self) -> Check {
        let next = self.wire().stream_delta(STREAM_PARTS[2]);
        let body = format!(
            "{}{}",
            self.stream_events(&STREAM_PARTS[..2]),
            &next[..next.len() / 2]
        );
        let fault = Fault::Script(vec![
            Action::Write(self.stream_head()),
            Action::Write(chunk(body)),
        ]);
        self.interrupted(fault, &STREAM_PARTS[..2].concat()).await
    }

    pub(super) async fn stream_without_end(&self) -> Check {
        let fault = self.stream_fault(self.stream_events(&STREAM_PARTS));
        self.interrupted(fault, &STREAM_PARTS.concat()).await
    }

    /// The stream `fault` breaks off after `expected`: that text, then
    /// `StreamInterrupted` whose `partial` is that text.
    async fn interrupted(&self, fault: Fault, expected: &str) -> Check {
        let run = self.stream(plan(vec![], fault)).await;
        let error = self.stream_failed(&run, expected, &[Kind::StreamInterrupted])?;
        match error {
            ProviderError::StreamInterrupted { partial, .. } if *partial == expected => {
                Ok(Self::stream_detail(&run, error))
            }
            other => Err(format!("the partial text is wrong: {other:?}")),
        }
    }

    pub(super) async fn stream_stalls_midway(&self) -> Check {
        let t = self.timeout;
        let fault = Fault::Script(vec![
            Action::Write(self.stream_head()),
            Action::Write(chunk(self.stream_events(&STREAM_PARTS[..2]))),
            Action::Stall,
        ]);
        let run = self.stream(plan(vec![], fault)).await;
        let error = self.stream_failed(&run, &STREAM_PARTS[..2].concat(), &[Kind::Timeout])?;
        ensure(run.attempts == 1, || {
            format!("{} attempts, expected 1", run.attempts)
        })?;
        Self::within(run.elapsed, t - Duration::from_millis(50), t + SLACK)?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_stalls_at_start(&self) -> Check {
        let fault = Fault::Script(vec![Action::Write(self.stream_head()), Action::Stall]);
        let run = self.stream(plan(vec![], fault)).await;
        let error = self.stream_failed(&run, "", &[Kind::Timeout])?;
        ensure(run.attempts == ATTEMPTS, || {
            format!("{} attempts, expected {ATTEMPTS}", run.attempts)
        })?;
        let low = self.timeout * ATTEMPTS as u32 + BACKOFF * 3;
        Self::within(run.elapsed, low - Duration::from_millis(50), low + SLACK)?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_keep_alive_only(&self) -> Check {
        let t = self.timeout;
        let mut actions = vec![
            Action::Write(self.stream_head()),
            Action::Write(chunk(self.stream_events(&STREAM_PARTS[..1]))),
        ];
        // Keep-alives for 20 limits, then silence.
        let every = t / 5;
        for _ in 0..100 {
            actions.push(Action::Pause(every));
            actions.push(Action::Write(chunk(self.wire().stream_keep_alive())));
        }
        actions.push(Action::Stall);
        let run = self.stream(plan(vec![], Fault::Script(actions))).await;
        let error = self.stream_failed(&run, STREAM_PARTS[0], &[Kind::Timeout])?;
        ensure(run.attempts == 1, || {
            format!("{} attempts, expected 1", run.attempts)
        })?;
        Self::within(run.elapsed, t - Duration::from_millis(50), t + SLACK)?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_error_event(&self) -> Check {
        self.error_event(STREAM_PARTS[0], self.stream_events(&STREAM_PARTS[..1]))
            .await
    }

    pub(super) async fn stream_error_first(&self) -> Check {
        self.error_event("", String::new()).await
    }

    /// `sent` (whose text is `before`), then an error event: that text,
    /// then an error with the server's message; retried as the error says
    /// only when no text came before it.
    async fn error_event(&self, before: &str, sent: String) -> Check {
        let message = "model overloaded, try again";
        let body = format!("{sent}{}", self.wire().stream_error(message));
        let run = self.stream(plan(vec![], self.stream_fault(body))).await;
        let error = self.stream_failed(&run, before, REPORTED)?;
        ensure(all_text(error).contains(message), || {
            format!("the server's message is lost: {}", describe(error))
        })?;
        let attempts = if before.is_empty() {
            expected_attempts(error)
        } else {
            1
        };
        ensure(run.attempts == attempts, || {
            format!("{} attempts, expected {attempts}", run.attempts)
        })?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_rate_limited(&self) -> Check {
        let limited = self.status(429, &[], &self.wire().error_body("Rate limit reached"));
        let run = self
            .stream(plan(vec![limited], self.stream_fault(self.full_stream())))
            .await;
        self.streamed(&run, &STREAM_PARTS.concat(), 2)
    }

    pub(super) async fn stream_server_error(&self) -> Check {
        let body = self.wire().error_body("upstream exploded");
        self.stream_status(500, Kind::ServerError, ATTEMPTS, body)
            .await
    }

    pub(super) async fn stream_unauthorized(&self) -> Check {
        let body = self.wire().error_body(&self.secret_message());
        self.stream_status(401, Kind::Auth, 1, body).await
    }

    /// HTTP `status` (of `kind`) with `body` to every stream request: that
    /// error after `attempts` attempts, no text.
    async fn stream_status(&self, status: u16, kind: Kind, attempts: usize, body: String) -> Check {
        let run = self
            .stream(plan(vec![], self.status(status, &[], &body)))
            .await;
        let error = self.stream_failed(&run, "", &[kind])?;
        ensure(error.status() == Some(status), || {
            format!("HTTP {:?}, expected {status}", error.status())
        })?;
        ensure(run.attempts == attempts, || {
            format!("{} attempts, expected {attempts}", run.attempts)
        })?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_html_body(&self) -> Check {
        let fault = Fault::Write(response(
            200,
            &[("content-type", "text/html")],
            "<html><body>Please sign in</body></html>\n",
        ));
        self.not_a_stream(fault, Some("Please sign in")).await
    }

    pub(super) async fn stream_empty_body(&self) -> Check {
        let fault = Fault::Write(response(
            200,
            &[("content-type", self.wire().stream_content_type())],
            "",
        ));
        self.not_a_stream(fault, None).await
    }

    /// HTTP 200 whose body is no stream: an error (showing `shown`, when
    /// given), no text, attempted as often as the error's retryability
    /// says.
    async fn not_a_stream(&self, fault: Fault, shown: Option<&str>) -> Check {
        let run = self.stream(plan(vec![], fault)).await;
        let error =
            self.stream_failed(&run, "", &[Kind::InvalidResponse, Kind::StreamInterrupted])?;
        if let Some(shown) = shown {
            ensure(all_text(error).contains(shown), || {
                format!("the page is not in the error: {}", describe(error))
            })?;
        }
        ensure(run.attempts == expected_attempts(error), || {
            format!(
                "{} attempts, expected {} for {}",
                run.attempts,
                expected_attempts(error),
                kind_name(error)
            )
        })?;
        Ok(Self::stream_detail(&run, error))
    }

    pub(super) async fn stream_whole_reply(&self) -> Check {
        let run = self.stream(plan(vec![], self.ok())).await;
        self.streamed(&run, OK, 1)
    }

    pub(super) async fn stream_invalid_utf8(&self) -> Check {
        let mut body = self.stream_events(&STREAM_PARTS[..1]);
        body.push_str(&self.wire().stream_delta(BAD_UTF8_MARK));
        body.push_str(&self.wire().stream_end());
        let run = self
            .stream(plan(vec![], self.stream_fault(Self::with_bad_utf8(&body))))
            .await;
        match &run.error {
            None if run.text.contains('\u{FFFD}') => Ok(format!("streamed {:?}", run.text)),
            None => Err(format!("streamed {:?} without U+FFFD", run.text)),
            Some(_) => {
                let error = self.stream_failed(
                    &run,
                    STREAM_PARTS[0],
                    &[Kind::InvalidResponse, Kind::StreamInterrupted],
                )?;
                Ok(Self::stream_detail(&run, error))
            }
        }
    }
}
