//! The OpenAI Images entrypoints (`POST [/v1]/images/generations`, `POST [/v1]/images/edits`),
//! served through the Responses API with the hosted `image_generation` tool.
//!
//! Relays speak Responses, not Images; so an Images request is translated into one Responses
//! request ([`Call::new`]) that the pipeline routes like any other (failover, affinity, health,
//! limits, credentials, record). Its answer is read whole (images are large, so the read is
//! capped at [`REPLY_MAX`] and each wait at the stream idle timeout) and translated back
//! ([`Call::answer`]). The translations themselves are pure ([`translate`], [`multipart`]).

pub mod multipart;
pub mod translate;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Map, Value};

use super::attempt::{Answer, AnswerBody};
use super::coding;
use super::receive::ClientRequest;
use super::record::{AttemptOutcome, Outcome, RecordGuard};
use super::relay_body::{ChunkStream, ProxyBody};
use super::{Plan, ProxyState};
use crate::record::usage::Usage;
use crate::routing::retry::{Cooldown, FailureClass};
use crate::routing::runtime::{HealthProbe, Permit};
use crate::time::now_ms;

pub use translate::{Entry, ImagesError};

/// The most of a relay's answer that is read: a few base64 images at 4K fit; more is refused.
pub const REPLY_MAX: usize = 64 << 20;

/// An Images request and the Responses request routed in its place.
pub struct Call {
    /// The Responses request (`POST /v1/responses`, JSON, not streamed).
    pub request: ClientRequest,
    /// The client's model, when it named one.
    pub images_model: Option<String>,
    /// Tool options asked for, echoed in the answer when the relay does not say.
    echo: Map<String, Value>,
}

impl Call {
    /// Translates the client's request (on a blocking thread: a form's files are base64-encoded
    /// and the body can be as large as `proxy.max_request_body_bytes`).
    pub async fn new(entry: Entry, client: &ClientRequest) -> Result<Self, ImagesError> {
        let content_type = client
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let mut headers = client.headers.clone();
        let body = client.body.clone();
        let translated = tokio::task::spawn_blocking(move || {
            let out = translate::translate(entry, &content_type, &body)?;
            let body = Bytes::from(out.body.to_string());
            // The new body is plain JSON, sent whole; the reply is asked for whole, as JSON.
            for name in [
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::ACCEPT_ENCODING,
            ] {
                headers.remove(name);
            }
            let json = HeaderValue::from_static("application/json");
            headers.insert(header::CONTENT_TYPE, json.clone());
            headers.insert(header::ACCEPT, json);
            let request =
                ClientRequest::prepare(Method::POST, "/v1/responses".into(), headers, body, false);
            Ok::<_, ImagesError>((request, out.images_model, out.echo))
        });
        let (request, images_model, echo) = translated.await.map_err(|e| {
            ImagesError::internal(format!("codex-helper could not translate the request: {e}"))
        })??;
        Ok(Self {
            request,
            images_model,
            echo,
        })
    }

    /// Reads the chosen answer whole and translates it. An image (or the relay's refusal)
    /// finishes the record and answers the client. A 2xx that cannot be used (its body broke
    /// or stalled, or it holds no image) has reached nobody yet, so it comes back
    /// [`Answered::Unusable`] for the request to go to another relay: the attempt is marked
    /// failed, a broken body cools the endpoint down as a broken stream does, and a missing
    /// image does not (the relay may serve everything else well).
    pub async fn answer(
        &self,
        state: &ProxyState,
        plan: &Plan,
        answer: Answer,
        permit: Permit,
        probe: Option<HealthProbe>,
        mut record: RecordGuard,
    ) -> Answered {
        let idle = match state.settings.stream_idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let (status, sse) = (answer.status, answer.sse);
        let body = match read_whole(answer.body, idle).await {
            Ok(body) => body,
            Err(error) => {
                let broke = answer_broke(plan, &error, probe, record, status);
                drop(permit);
                return broke;
            }
        };
        if !status.is_success() {
            // A client error the relay sent (the retry policy returns those as they are).
            let body = plan.redactor.redact_bytes(&body).into_owned();
            let failure = translate::relay_failure(status, &body);
            let reply = finish(record, plan, Err(failure), Outcome::Completed, permit);
            return Answered::Done(reply);
        }
        let echo = self.echo.clone();
        let translated = tokio::task::spawn_blocking(move || read_answer(&body, sse, &echo));
        let Ok(read) = translated.await else {
            let failure =
                ImagesError::internal("codex-helper could not translate the relay's answer");
            let reply = finish(record, plan, Err(failure), Outcome::Completed, permit);
            return Answered::Done(reply);
        };
        record.usage = read.usage;
        record.model_answered = read.model;
        let outcome = match (read.result, probe) {
            (Ok(json), probe) => {
                if let Some(probe) = probe {
                    probe.succeeded();
                }
                return Answered::Done(finish(record, plan, Ok(json), Outcome::Completed, permit));
            }
            (Err(e), _) if e.code.as_deref() == Some(translate::MISSING_RESULT) => {
                drop(permit);
                let class = FailureClass::ImageGenerationMissingResult;
                return Answered::unusable(record, status, e, class, Outcome::Completed);
            }
            (Err(e), _) => (e, Outcome::FailedInStream),
        };
        Answered::Done(finish(record, plan, Err(outcome.0), outcome.1, permit))
    }
}

/// The relay's answer broke before it was whole: the endpoint's health hears of it, and the
/// request may go elsewhere.
fn answer_broke(
    plan: &Plan,
    error: &str,
    probe: Option<HealthProbe>,
    record: RecordGuard,
    status: StatusCode,
) -> Answered {
    let error = plan.redactor.redact(error).into_owned();
    if let Some(probe) = probe {
        probe.failed(Cooldown::Growing, format!("images answer broke: {error}"));
    }
    let failure = ImagesError {
        status: StatusCode::BAD_GATEWAY,
        message: format!("codex-helper: the relay's answer broke: {error}"),
        kind: "upstream_error",
        param: None,
        code: Some("upstream_stream_error".into()),
    };
    let (class, outcome) = (FailureClass::Transport, Outcome::UpstreamStreamError);
    Answered::unusable(record, status, failure, class, outcome)
}

/// How an Images answer ended.
pub enum Answered {
    /// The client's answer; the record is finished.
    Done(Response<ProxyBody>),
    /// A 2xx that cannot be used, which nobody has seen: the request may go elsewhere. The
    /// record comes back, its last attempt marked failed.
    Unusable(Box<RecordGuard>, Unusable),
}

/// A relay's unusable answer: why, what the client gets if no other relay does better, and
/// how the record then ends.
pub struct Unusable {
    pub class: FailureClass,
    failure: ImagesError,
    outcome: Outcome,
}

impl Answered {
    fn unusable(
        mut record: RecordGuard,
        status: StatusCode,
        failure: ImagesError,
        class: FailureClass,
        outcome: Outcome,
    ) -> Self {
        if let Some(last) = record.attempts.last_mut() {
            last.outcome = AttemptOutcome::FailedStream {
                status: status.as_u16(),
                class,
                detail: failure.message.clone(),
            };
        }
        let unusable = Unusable {
            class,
            failure,
            outcome,
        };
        Answered::Unusable(Box::new(record), unusable)
    }
}

impl Unusable {
    /// The client's answer when no other relay could do better.
    pub fn give_up(self, record: RecordGuard, plan: &Plan) -> Response<ProxyBody> {
        finish(record, plan, Err(self.failure), self.outcome, None)
    }
}

/// What a relay's 2xx body said.
struct Read {
    usage: Option<Usage>,
    model: Option<String>,
    /// The Images answer, serialised, or why there is none.
    result: Result<String, ImagesError>,
}

/// The Responses object in `body`, its usage and model, and the Images answer (CPU-heavy for
/// large images: run on a blocking thread).
fn read_answer(body: &[u8], sse: bool, echo: &Map<String, Value>) -> Read {
    let response = match translate::response_object(body, sse) {
        Ok(response) => response,
        Err(e) => {
            return Read {
                usage: None,
                model: None,
                result: Err(e),
            };
        }
    };
    let usage = response.get("usage").and_then(Usage::from_json);
    let model = response["model"].as_str().map(str::to_string);
    let result = translate::images_answer(&response, echo, now_ms() / 1000).map(|a| a.to_string());
    Read {
        usage,
        model,
        result,
    }
}

/// Why a body could not be read whole.
async fn read_whole(body: AnswerBody, idle: Option<Duration>) -> Result<Bytes, String> {
    let stream = match body {
        AnswerBody::Whole(bytes) => return Ok(bytes),
        AnswerBody::Stream(stream) | AnswerBody::Events { stream, .. } => stream,
    };
    let mut buf = BytesMut::new();
    coding::read_capped(idle_bounded(stream, idle), &mut buf, REPLY_MAX)
        .await
        .map_err(|e| e.to_string())?;
    if buf.len() > REPLY_MAX {
        return Err(format!("the answer is larger than {} MiB", REPLY_MAX >> 20));
    }
    Ok(buf.freeze())
}

/// `stream`, ended with a timeout error when no chunk comes for `idle`.
fn idle_bounded(stream: ChunkStream, idle: Option<Duration>) -> ChunkStream {
    let Some(idle) = idle else {
        return stream;
    };
    Box::pin(futures_util::stream::unfold(
        Some(stream),
        move |stream| async move {
            let mut stream = stream?;
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => {
                    let error = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no data from the upstream for {:.1} s (proxy.stream_idle_timeout_ms)",
                            idle.as_secs_f64()
                        ),
                    );
                    Some((Err(error), None))
                }
            }
        },
    ))
}

/// Finishes the record with the reply's status (and error) and answers the client; the
/// concurrency slot goes back after the record is finished, as a relayed body's does.
fn finish(
    mut record: RecordGuard,
    plan: &Plan,
    result: Result<String, ImagesError>,
    outcome: Outcome,
    permit: impl Into<Option<Permit>>,
) -> Response<ProxyBody> {
    let response = match result {
        Ok(json) => json_reply(StatusCode::OK, json),
        Err(mut error) => {
            error.message = plan.redactor.redact(&error.message).into_owned();
            record.error = Some(error.message.clone());
            json_reply(error.status, error.to_json().to_string())
        }
    };
    record.status = Some(response.status().as_u16());
    record.ttfb = Some(record.started.elapsed());
    record.bytes_out = response_len(&response);
    record.finish(outcome);
    drop(permit);
    response
}

/// A request refused before any relay was tried, in the Images shape.
pub fn refuse(mut record: RecordGuard, error: ImagesError) -> Response<ProxyBody> {
    record.status = Some(error.status.as_u16());
    record.error = Some(error.message.clone());
    record.finish(Outcome::Rejected);
    json_reply(error.status, error.to_json().to_string())
}

/// One of the proxy's own error replies (no relay could take the request, …) in the Images
/// shape; its status and `Retry-After` are kept. Its record is already finished.
pub fn reshaped(response: Response<ProxyBody>) -> Response<ProxyBody> {
    let (parts, body) = response.into_parts();
    let ProxyBody::Full(Some(bytes)) = body else {
        return Response::from_parts(parts, body);
    };
    let json = translate::reshape_proxy_error(parts.status, &bytes).to_string();
    let mut reply = json_reply(parts.status, json);
    if let Some(wait) = parts.headers.get(header::RETRY_AFTER) {
        reply
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.clone());
    }
    reply
}

fn json_reply(status: StatusCode, json: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(json)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn response_len(response: &Response<ProxyBody>) -> u64 {
    match response.body() {
        ProxyBody::Full(Some(bytes)) => bytes.len() as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(items: Vec<std::io::Result<&'static str>>) -> ChunkStream {
        Box::pin(futures_util::stream::iter(
            items.into_iter().map(|i| i.map(Bytes::from)),
        ))
    }

    #[tokio::test]
    async fn a_streamed_answer_is_read_whole_and_capped() {
        let body = AnswerBody::Stream(chunks(vec![Ok("ab"), Ok("cd")]));
        assert_eq!(read_whole(body, None).await.unwrap(), "abcd");
        let broken = AnswerBody::Stream(chunks(vec![Ok("ab"), Err(std::io::Error::other("cut"))]));
        assert_eq!(read_whole(broken, None).await.unwrap_err(), "cut");
    }

    #[tokio::test]
    async fn a_silent_relay_is_given_up_after_the_idle_timeout() {
        let silent: ChunkStream = Box::pin(futures_util::stream::pending());
        let error = read_whole(AnswerBody::Stream(silent), Some(Duration::from_millis(50)))
            .await
            .unwrap_err();
        assert!(
            error.contains("no data from the upstream for 0.1 s"),
            "{error}"
        );
    }

    #[test]
    fn the_proxys_own_errors_keep_status_and_retry_after() {
        let mut response = super::super::replies::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "route_unavailable",
            "no upstream is available",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(3));
        let reshaped = reshaped(response);
        assert_eq!(reshaped.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reshaped.headers()[header::RETRY_AFTER], "3");
        let ProxyBody::Full(Some(body)) = reshaped.body() else {
            panic!("a whole body");
        };
        let json: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["error"]["type"], "image_generation_route_failed");
        assert_eq!(json["error"]["code"], "route_unavailable");
    }
}
