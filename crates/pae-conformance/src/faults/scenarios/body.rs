//! Scenarios about what a status-200 reply carries: empty, non-JSON, HTML,
//! incomplete and non-UTF-8 bodies, error objects, a mislabelled content
//! type and a large reply.

use pae_core::{ChatModel, ProviderErrorKind as Kind, error_chain};

use crate::faults::runner::{
    BAD_UTF8_MARK, Check, HTTP, OK, REPORTED, Runner, body_of, ensure, plan,
};
use crate::faults::{Fault, ModelTarget, WireFormat, response};
use crate::text::{describe, kind_name};

impl<W, F, M> Runner<'_, W, F>
where
    W: WireFormat,
    F: Fn(&ModelTarget) -> M,
    M: ChatModel,
{
    pub(super) async fn empty_body(&self) -> Check {
        self.unreadable_body("").await
    }

    pub(super) async fn non_json_body(&self) -> Check {
        self.unreadable_body("Service temporarily unavailable, try again later")
            .await
    }

    pub(super) async fn html_body(&self) -> Check {
        self.unreadable_body("<!DOCTYPE html><html><body>Gateway says hi</body></html>")
            .await
    }

    /// HTTP 200 with `body`: `InvalidResponse` with the body, not retried.
    async fn unreadable_body(&self, body: &str) -> Check {
        let run = self.chat(plan(vec![], self.json_200(body))).await;
        let error =
            self.typed_error(&run.result, run.attempts, &[Kind::InvalidResponse], Some(1))?;
        ensure(body_of(error) == Some(body), || {
            format!("the body is {:?}, expected {body:?}", body_of(error))
        })?;
        Ok(format!(
            "InvalidResponse with the body, 1 attempt, {:?}",
            run.elapsed
        ))
    }

    pub(super) async fn incomplete_json(&self) -> Check {
        let bodies = self.wire().incomplete_replies();
        ensure(!bodies.is_empty(), || {
            "the wire format lists no incomplete replies".into()
        })?;
        let mut wrong = Vec::new();
        for body in &bodies {
            let run = self.chat(plan(vec![], self.json_200(body))).await;
            let checked = self
                .typed_error(&run.result, run.attempts, &[Kind::InvalidResponse], Some(1))
                .and_then(|error| {
                    ensure(body_of(error) == Some(body.as_str()), || {
                        format!("the error's body is {:?}", body_of(error))
                    })
                });
            if let Err(reason) = checked {
                wrong.push(format!("{body}: {reason}"));
            }
        }
        ensure(wrong.is_empty(), || wrong.join("; "))?;
        Ok(format!("{} bodies, each InvalidResponse", bodies.len()))
    }

    pub(super) async fn error_object_with_status_200(&self) -> Check {
        let message = "the model runner crashed";
        let run = self
            .chat(plan(
                vec![],
                self.json_200(self.wire().error_reply(message)),
            ))
            .await;
        let error = self.typed_error(&run.result, run.attempts, REPORTED, None)?;
        let shown = error_chain(error).contains(message)
            || (HTTP.contains(&error.kind())
                && body_of(error).is_some_and(|b| b.contains(message)));
        ensure(shown, || {
            format!(
                "the error does not say what the server reported: {}",
                describe(error)
            )
        })?;
        Ok(format!(
            "{} ({}), {} attempt(s)",
            kind_name(error),
            describe(error),
            run.attempts
        ))
    }

    pub(super) async fn invalid_utf8_body(&self) -> Check {
        let body = Self::with_bad_utf8(&self.wire().reply(BAD_UTF8_MARK));
        let run = self.chat(plan(vec![], self.json_200(body))).await;
        match &run.result {
            Ok(reply) if reply.content().contains('\u{FFFD}') => {
                Ok(format!("replied {:?}", reply.content()))
            }
            Ok(reply) => Err(format!("replied {:?} without U+FFFD", reply.content())),
            Err(_) => {
                self.typed_error(&run.result, run.attempts, &[Kind::InvalidResponse], Some(1))?;
                Ok("InvalidResponse, 1 attempt".into())
            }
        }
    }

    pub(super) async fn wrong_content_type(&self) -> Check {
        let fault = Fault::Write(response(
            200,
            &[("content-type", "text/html; charset=utf-8")],
            self.wire().reply(OK),
        ));
        let run = self.chat(plan(vec![], fault)).await;
        self.replied(&run, OK, 1)
    }

    pub(super) async fn large_body(&self) -> Check {
        let text = "ünïcödé tëxt ".repeat((1 << 20) / 20);
        let fault = self.json_200(self.wire().reply(&text));
        let run = self.chat(plan(vec![], fault)).await;
        let detail = self.replied(&run, &text, 1)?;
        Ok(format!("{} bytes; {detail}", text.len()))
    }
}
