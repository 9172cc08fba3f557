//! One bridged connection, after both handshakes: frames pass both ways as they arrive,
//! `response.create` frames have their model mapped, the relay's events are read for usage,
//! and every response on the connection is one record (one ledger row). A relay that breaks
//! the connection ends the client's with an `error` event and a close, never silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{Connected, MAX_MESSAGE_BYTES};

/// How long a connection the proxy ends waits for the client's close before dropping it.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
use crate::proxy::ProxyState;
use crate::proxy::clients::UpgradedIo;
use crate::proxy::filter;
use crate::proxy::inspect;
use crate::proxy::members::{self, PresentedKey};
use crate::proxy::overrides;
use crate::proxy::record::{Outcome, RecordGuard, RequestRecord};
use crate::record::usage::Usage;
use crate::redact::Redactor;
use crate::routing::Upstream;
use crate::routing::model_map::map_model;
use crate::routing::retry::Cooldown;
use crate::routing::runtime::{HealthProbe, Permit};
use crate::time::now_ms;

type Socket = WebSocketStream<Box<dyn UpgradedIo>>;

/// Both connections of a bridge, each split into its sending and its receiving half. (Fields
/// drop in order: the relay's connection closes first.)
struct Ends {
    to_relay: SplitSink<Socket, Message>,
    from_relay: SplitStream<Socket>,
    to_client: SplitSink<Socket, Message>,
    from_client: SplitStream<Socket>,
}

impl Ends {
    /// Team mode: the member's key no longer admits it. The client gets the refusal as an
    /// `error` event and a policy close; the relay connection closes.
    async fn refuse_member(&mut self, event: String) {
        let _ = self.to_client.send(Message::text(event)).await;
        let _ = self
            .to_client
            .send(close_frame(1008, "member key refused"))
            .await;
        let _ = self.to_relay.close().await;
    }

    /// Closes the client's connection with `code`, then lets the closing handshake finish,
    /// bounded: what the client still sends (a pong, its close) is read, not answered with a
    /// reset that would discard what was sent before the close.
    async fn close_client(&mut self, code: u16, reason: &'static str) {
        let _ = self.to_client.send(close_frame(code, reason)).await;
        let client_closed = async {
            while let Some(Ok(message)) = self.from_client.next().await {
                if message.is_close() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, client_closed).await;
    }
}

/// What a relay's message was, as far as the bridge reads it.
enum Read {
    /// A failure event (`response.failed`, `error`), in a response or not.
    Failure,
    Other,
}

/// A relay's failure event with our secrets hidden (see [`Redactor::hide_secrets`]): a relay
/// that echoes our key in its error does not show it to the client.
fn hide_secrets(redactor: &Redactor, message: Message) -> Message {
    let Message::Text(text) = message else {
        return message;
    };
    let hidden = redactor.hide_secrets(Bytes::from(text));
    // A secret's bytes, whole, become `*`s: still UTF-8 (the fallback is never taken).
    let text = Utf8Bytes::try_from(hidden.clone())
        .unwrap_or_else(|_| String::from_utf8_lossy(&hidden).into_owned().into());
    Message::Text(text)
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One bridged connection: its relay, and the record of the response in progress.
pub(super) struct Bridge {
    state: Arc<ProxyState>,
    upstream: Upstream,
    /// The plan's when the connection opened: hides our secrets in the relay's failure events.
    redactor: Arc<Redactor>,
    /// The endpoint's concurrency slot, held until the connection ends.
    _permit: Permit,
    probe: HealthProbe,
    alone: bool,
    /// The handshake's record: what every response's record starts from.
    template: RequestRecord,
    /// The response in progress, and when its `response.create` was sent.
    current: Option<(RecordGuard, Instant)>,
    /// The session whose overrides are applied to each `response.create`, read afresh for
    /// each: a change made while the connection is open applies to its next response.
    session: Option<String>,
    /// Team mode: the member key the handshake presented, checked again at each
    /// `response.create` (a key disabled or removed meanwhile ends the connection).
    member_key: Option<PresentedKey>,
}

impl Bridge {
    pub(super) fn new(
        state: &Arc<ProxyState>,
        mut handshake: RecordGuard,
        connected: Connected,
        session: Option<String>,
    ) -> (Self, Box<dyn UpgradedIo>) {
        let Connected {
            socket,
            headers: _,
            upstream,
            permit,
            probe,
            alone,
        } = connected;
        handshake.provider = Some(upstream.provider.clone());
        handshake.endpoint = Some(upstream.endpoint.clone());
        handshake.price_multiplier = upstream.price_multiplier;
        handshake.status = Some(101);
        // The handshake is not a response: it leaves no row of its own.
        let template = handshake.unrecorded();
        let bridge = Bridge {
            state: state.clone(),
            redactor: state.plan().redactor.clone(),
            upstream,
            _permit: permit,
            probe,
            alone,
            template,
            current: None,
            session,
            member_key: None,
        };
        (bridge, socket)
    }

    pub(super) fn with_member_key(mut self, key: Option<PresentedKey>) -> Self {
        self.member_key = key;
        self
    }

    /// Team mode: whether the member may start another response on this connection; the
    /// refusal as an `error` event when not.
    async fn member_refusal(&self, message: &Message) -> Option<String> {
        let (Some(keys), Some(key)) = (&self.state.member_keys, &self.member_key) else {
            return None;
        };
        let Message::Text(text) = message else {
            return None;
        };
        head(text.as_bytes()).filter(|h| h.kind == "response.create")?;
        let refusal = members::admit(keys.check(&key.0).await).err()?;
        Some(
            serde_json::json!({
                "type": "error",
                "status": refusal.status.as_u16(),
                "error": {
                    "type": "codex_helper_error",
                    "code": refusal.code,
                    "message": refusal.message,
                },
            })
            .to_string(),
        )
    }

    pub(super) async fn run(mut self, client: Box<dyn UpgradedIo>, relay: Box<dyn UpgradedIo>) {
        let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config())).await;
        let relay = WebSocketStream::from_raw_socket(relay, Role::Client, Some(config())).await;
        let (to_client, from_client) = client.split();
        let (to_relay, from_relay) = relay.split();
        let mut ends = Ends {
            to_client,
            from_client,
            to_relay,
            from_relay,
        };
        // Both endings consume the bridge, so its permit is given back before the sockets close.
        match self.pass_messages(&mut ends).await {
            Some(error) => self.relay_lost(&mut ends, error).await,
            None => self.ended(),
        }
    }

    /// The connection ended without a fault of the relay's: the response in progress (if
    /// any) is the client's to have left, and the endpoint answered well.
    fn ended(mut self) {
        self.end_current(Outcome::ClientDisconnected, None);
        self.probe.succeeded();
    }

    /// Passes messages both ways until one side ends: `None` when the connection ended
    /// normally (the client left or was refused, or a close frame was passed on), or the
    /// error when the relay broke the connection or went silent in a response.
    async fn pass_messages(&mut self, ends: &mut Ends) -> Option<String> {
        let idle = match self.state.settings.stream_idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let mut last_from_relay = Instant::now();
        loop {
            // Only a response in progress waits on the relay; between turns the socket may idle.
            let silent = idle.filter(|_| self.current.is_some());
            let deadline = silent.map(|idle| last_from_relay + idle);
            tokio::select! {
                () = sleep_until(deadline), if deadline.is_some() => {
                    return Some(format!(
                        "no message from the relay for {:.1} s in a response",
                        silent.unwrap_or_default().as_secs_f64()
                    ));
                }
                message = ends.from_client.next() => match message {
                    Some(Ok(message)) => {
                        if let Some(event) = self.member_refusal(&message).await {
                            ends.refuse_member(event).await;
                            return None;
                        }
                        let closing = message.is_close();
                        let message = self.on_client_message(message);
                        // 4a. filter: the filter.json rules, after the model mapping
                        let message = self.filtered(message).await;
                        if ends.to_relay.send(message).await.is_err() || closing {
                            return None;
                        }
                    }
                    // The client went away: so does the relay connection.
                    Some(Err(_)) | None => {
                        let _ = ends.to_relay.close().await;
                        return None;
                    }
                },
                message = ends.from_relay.next() => match message {
                    Some(Ok(message)) => {
                        // Pings are not progress: a relay that only pings is silent.
                        if message.is_text() || message.is_binary() {
                            last_from_relay = Instant::now();
                        }
                        let closing = message.is_close();
                        let message = match self.on_relay_message(&message) {
                            Read::Failure => hide_secrets(&self.redactor, message),
                            Read::Other => message,
                        };
                        if ends.to_client.send(message).await.is_err() || closing {
                            return None;
                        }
                    }
                    Some(Err(e)) => return Some(e.to_string()),
                    None => return Some("the relay closed the connection".to_string()),
                },
            }
        }
    }

    /// The relay broke the connection or went silent: a response in progress fails visibly,
    /// the client's connection closes cleanly, and the endpoint's health hears of it.
    async fn relay_lost(mut self, ends: &mut Ends, error: String) {
        if self.current.is_some() {
            let event = failure_event(&error);
            let _ = ends.to_client.send(Message::text(event)).await;
        }
        ends.close_client(1011, "relay connection lost").await;
        self.end_current(Outcome::UpstreamStreamError, Some(error.clone()));
        // A lone relay is not cooled down: that would leave its sessions nowhere to go.
        let cooldown = if self.alone {
            Cooldown::None
        } else {
            Cooldown::Growing
        };
        self.probe
            .failed(cooldown, format!("{}: {error}", self.upstream.key()));
    }

    /// A `response.create` with the filter rules applied; any other message as it is.
    async fn filtered(&self, message: Message) -> Message {
        match message {
            Message::Text(text)
                if !self.state.filter.get().is_empty() && is_create(text.as_bytes()) =>
            {
                Message::Text(filter::text(&self.state, text).await)
            }
            message => message,
        }
    }

    /// A client message on its way to the relay: a `response.create` starts a response's
    /// record and has its model mapped.
    fn on_client_message(&mut self, message: Message) -> Message {
        let Message::Text(text) = &message else {
            return message;
        };
        let bytes = text.as_bytes();
        let Some(head) = head(bytes).filter(|h| h.kind == "response.create") else {
            return message;
        };
        // The session's overrides first, so the record and the model mapping see their model.
        let plan = self.state.plan();
        let applied = overrides::resolve_session(&self.state, &plan, self.session.as_deref());
        if let Some((applied, facts, patched)) = applied.and_then(|a| {
            let facts = inspect::inspect(bytes);
            let patched = overrides::patch_body(&a, bytes, facts.as_ref())?;
            Some((a, facts, patched))
        }) {
            let (body, note) = overrides::note_of(&applied, patched);
            if let Ok(text) = String::from_utf8(body) {
                // The record keeps the model Codex asked for, as over HTTP.
                let asked = facts.and_then(|f| f.model);
                let sent = self.on_create(Message::text(text), head.generate);
                if let Some((record, _)) = self.current.as_mut() {
                    record.model_requested = asked;
                    if let Some(decision) = record.decision.as_mut() {
                        decision.overrides = Some(note);
                    }
                }
                return sent;
            }
        }
        let generate = head.generate;
        self.on_create(message, generate)
    }

    /// A `response.create` on its way to the relay: its record starts and its model is mapped.
    fn on_create(&mut self, message: Message, generate: Option<bool>) -> Message {
        let Message::Text(text) = &message else {
            return message;
        };
        let bytes = text.as_bytes();
        let facts = inspect::inspect(bytes);
        let requested = facts.as_ref().and_then(|f| f.model.clone());
        let mapped = requested
            .as_deref()
            .and_then(|m| map_model(&self.upstream.model_mapping, m));
        self.end_current(Outcome::ClientDisconnected, None);
        // A prewarm (`generate: false`) makes no output and costs nothing: not a turn.
        if generate != Some(false) {
            self.start_record(requested.clone(), mapped.clone());
        }
        match (mapped, facts.and_then(|f| f.model_span)) {
            (Some(model), Some(span)) => {
                let body = inspect::replace_model(bytes, span, &model);
                match String::from_utf8(body.to_vec()) {
                    Ok(text) => Message::text(text),
                    Err(_) => message,
                }
            }
            _ => message,
        }
    }

    fn start_record(&mut self, requested: Option<String>, mapped: Option<String>) {
        let mut record = RecordGuard::new(
            RequestRecord {
                trace_id: self.state.next_trace_id(),
                started: Instant::now(),
                started_at_ms: now_ms(),
                model_requested: requested.clone(),
                model_sent: mapped.clone().or(requested),
                ..self.template.clone()
            },
            self.state.sink.clone(),
        );
        record.status = Some(200);
        self.current = Some((record, Instant::now()));
    }

    /// A relay message on its way to the client: read for the response's first event, usage
    /// and end.
    fn on_relay_message(&mut self, message: &Message) -> Read {
        let Message::Text(text) = message else {
            return Read::Other;
        };
        let head = head(text.as_bytes());
        let failure =
            (head.as_ref()).is_some_and(|h| matches!(h.kind.as_str(), "response.failed" | "error"));
        let read = if failure { Read::Failure } else { Read::Other };
        let Some((record, sent)) = self.current.as_mut() else {
            return read;
        };
        if record.ttfb.is_none() {
            record.ttfb = Some(sent.elapsed());
        }
        let Some(head) = head else {
            return read;
        };
        let outcome = match head.kind.as_str() {
            "response.completed" | "response.incomplete" => Outcome::Completed,
            "response.failed" | "error" => Outcome::FailedInStream,
            _ => return read,
        };
        let event: Option<Value> = serde_json::from_str(text.as_str()).ok();
        if let Some(event) = &event {
            record.usage = Usage::from_payload(event);
            record.model_answered = event
                .pointer("/response/model")
                .and_then(Value::as_str)
                .map(str::to_string);
            record.service_tier = event
                .pointer("/response/service_tier")
                .and_then(Value::as_str)
                .map(str::to_string);
            if outcome == Outcome::FailedInStream {
                record.error = event
                    .pointer("/error/message")
                    .or_else(|| event.pointer("/response/error/message"))
                    .and_then(Value::as_str)
                    .map(|m| m.chars().take(300).collect());
            }
        }
        self.end_current(outcome, None);
        read
    }

    fn end_current(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some((mut record, _)) = self.current.take() {
            if error.is_some() {
                record.error = error;
            }
            record.finish(outcome);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What the bridge reads of a message: its `type` and `generate` (false for a prewarm).
struct Head {
    kind: String,
    generate: Option<bool>,
}

/// Whether a message is a `response.create`.
fn is_create(bytes: &[u8]) -> bool {
    head(bytes).is_some_and(|h| h.kind == "response.create")
}

/// A message's [`Head`], read without building the whole value.
fn head(bytes: &[u8]) -> Option<Head> {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
        generate: Option<bool>,
    }
    let typed = serde_json::from_slice::<Typed>(bytes).ok()?;
    Some(Head {
        kind: typed.kind?.into_owned(),
        generate: typed.generate,
    })
}

/// The event that tells Codex the response failed because the relay's connection broke.
fn failure_event(error: &str) -> String {
    serde_json::json!({
        "type": "error",
        "status": 502,
        "error": {
            "type": "server_error",
            "code": "relay_connection_lost",
            "message": format!("codex-helper: the relay's WebSocket broke: {error}"),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_without_the_rest() {
        let prewarm = head(br#"{"type":"response.create","input":[],"generate":false}"#).unwrap();
        assert_eq!(
            (prewarm.kind.as_str(), prewarm.generate),
            ("response.create", Some(false))
        );
        assert!(head(b"not json").is_none());
        assert!(head(br#"{"input":[]}"#).is_none());
    }
}
