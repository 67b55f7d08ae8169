//! Scenarios about the connection: no answer, a body that stalls or is
//! cut, connections dropped, closed on accept or refused (for chat and
//! stream requests), and a server that does not speak HTTP.

use std::time::Duration;

use pae_core::{ChatModel, ProviderErrorKind as Kind};

use crate::faults::runner::{ATTEMPTS, BACKOFF};
use crate::faults::runner::{Check, OK, Runner, SLACK, closed_port_url, ensure, plan};
use crate::faults::{Action, Fault, ModelTarget, WireFormat};
use crate::text::kind_name;

impl<W, F, M> Runner<'_, W, F>
where
    W: WireFormat,
    F: Fn(&ModelTarget) -> M,
    M: ChatModel,
{
    pub(super) async fn no_answer(&self) -> Check {
        self.stalled(Vec::new()).await
    }

    pub(super) async fn body_stalls(&self) -> Check {
        let reply = self.wire().reply(OK);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reply.len()
        );
        self.stalled(vec![
            Action::Write(head.into_bytes()),
            Action::Write(reply.as_bytes()[..reply.len() / 2].to_vec()),
        ])
        .await
    }

    /// The server writes `before`, then stalls: `Timeout` after the limit,
    /// retried.
    async fn stalled(&self, before: Vec<Action>) -> Check {
        let mut actions = before;
        actions.push(Action::Stall);
        let run = self.chat(plan(vec![], Fault::Script(actions))).await;
        let error =
            self.typed_error(&run.result, run.attempts, &[Kind::Timeout], Some(ATTEMPTS))?;
        let low = self.timeout * ATTEMPTS as u32 + BACKOFF * 3;
        Self::within(run.elapsed, low - Duration::from_millis(50), low + SLACK)?;
        Ok(format!(
            "{} after {} attempts, {:?}",
            kind_name(error),
            run.attempts,
            run.elapsed
        ))
    }

    pub(super) async fn body_cut(&self) -> Check {
        let reply = self.wire().reply(OK);
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reply.len() + 100
        )
        .into_bytes();
        bytes.extend_from_slice(reply.as_bytes());
        let run = self.chat(plan(vec![], Fault::Write(bytes))).await;
        let error = self.typed_error(
            &run.result,
            run.attempts,
            &[Kind::Connection, Kind::StreamInterrupted],
            Some(ATTEMPTS),
        )?;
        Ok(format!(
            "{} after {} attempts",
            kind_name(error),
            run.attempts
        ))
    }

    pub(super) async fn dropped_connection(&self) -> Check {
        self.closed(Fault::Drop).await
    }

    pub(super) async fn closed_on_accept(&self) -> Check {
        self.closed(Fault::CloseOnAccept).await
    }

    /// Every connection closes (`fault`) without an answer: a retryable
    /// `Connection` error, retried.
    async fn closed(&self, fault: Fault) -> Check {
        let run = self.chat(plan(vec![], fault)).await;
        let error = self.typed_error(
            &run.result,
            run.attempts,
            &[Kind::Connection],
            Some(ATTEMPTS),
        )?;
        Self::within(run.elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
        Ok(format!(
            "{} after {} attempts, {:?}",
            kind_name(error),
            run.attempts,
            run.elapsed
        ))
    }

    pub(super) async fn connection_refused(&self) -> Check {
        self.refused(false).await
    }

    pub(super) async fn stream_connection_refused(&self) -> Check {
        self.refused(true).await
    }

    /// A chat or stream request to a port where nothing listens: a
    /// `Connection` error, retried within the policy's backoff.
    async fn refused(&self, streaming: bool) -> Check {
        let url = closed_port_url()?;
        let (error, elapsed) = if streaming {
            let run = self.stream_at(&url).await;
            let elapsed = run.elapsed;
            (
                self.stream_failed(&run, "", &[Kind::Connection])?
                    .to_string(),
                elapsed,
            )
        } else {
            let run = self.chat_at(&url).await;
            let error = self.typed_error(&run.result, ATTEMPTS, &[Kind::Connection], None)?;
            (error.to_string(), run.elapsed)
        };
        Self::within(elapsed, BACKOFF * 3, BACKOFF * 3 + SLACK)?;
        Ok(format!("{error}, {elapsed:?}"))
    }

    pub(super) async fn not_http(&self) -> Check {
        let fault = Fault::Write(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n".to_vec());
        let run = self.chat(plan(vec![], fault)).await;
        let error = self.typed_error(
            &run.result,
            run.attempts,
            &[Kind::Connection, Kind::InvalidResponse],
            None,
        )?;
        Ok(format!(
            "{} after {} attempt(s)",
            kind_name(error),
            run.attempts
        ))
    }

    pub(super) async fn stream_dropped_connection(&self) -> Check {
        let run = self.stream(plan(vec![], Fault::Drop)).await;
        let error = self.stream_failed(&run, "", &[Kind::Connection])?;
        ensure(run.attempts == ATTEMPTS, || {
            format!("{} attempts, expected {ATTEMPTS}", run.attempts)
        })?;
        Ok(Self::stream_detail(&run, error))
    }
}
