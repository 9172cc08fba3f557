//! The capability probes (pure): what each sends and how its answer is classified.
//!
//! Probes spend nothing: a body without a model is a validation probe: a relay that has the
//! path and reads the body complains about the missing model, one that lacks the feature
//! complains about the feature (or has no such path). The real paths Codex uses are probed;
//! a redirect, an HTML page or a 200 that is not what Codex reads is a failure, never support.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exchange::{Exchanged, Reply, Sent, snippet};

/// What one probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `GET /models`: Codex's catalog, an OpenAI list, or nothing.
    Models,
    /// `POST /responses`, streaming: the API Codex speaks.
    Responses,
    /// `POST /responses/compact`: remote compaction v1 (older Codex versions).
    CompactV1,
    /// `POST /responses` with a `compaction_trigger` item: remote compaction v2.
    CompactV2,
    /// `POST /responses` with the hosted `image_generation` tool.
    ImageGeneration,
    /// The Responses WebSocket handshake.
    Websocket,
    /// `POST /chat/completions`, asked only when `/responses` is missing: to say why.
    ChatCompletions,
}

impl Probe {
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Models => "models",
            Probe::Responses => "responses",
            Probe::CompactV1 => "compact_v1",
            Probe::CompactV2 => "compact_v2",
            Probe::ImageGeneration => "image_generation",
            Probe::Websocket => "websocket",
            Probe::ChatCompletions => "chat_completions",
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    Supported,
    Unsupported,
    /// The relay refused the key (401/403).
    AuthFailed,
    /// No answer that says either way: a timeout, a 5xx, a page that is not the API.
    Error,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Unsupported => "unsupported",
            Support::AuthFailed => "auth_failed",
            Support::Error => "error",
        }
    }
}

/// What the verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// A success answer of the shape Codex reads.
    Answered,
    /// The relay read the request and objected only to what the probe left out on purpose
    /// (the model): the path and the feature were accepted, not exercised.
    Validated,
    /// The relay said no: no such path, or an error naming the feature.
    Refused,
    /// An answer that settles nothing, or none.
    Inconclusive,
}

/// One probe's result, as `--json` and the evidence keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub probe: Probe,
    pub support: Support,
    pub basis: Basis,
    pub status: Option<u16>,
    pub ms: u64,
    /// Why, in a sentence (relay text in it is short and redacted).
    pub reason: String,
    pub sent: Sent,
    /// `/models` only: `codex_catalog` or `openai_list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
}

/// What a `/models` answer held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// `codex_catalog` (`{"models":[…]}`) or `openai_list` (`{"data":[…]}`).
    pub shape: String,
    pub models: usize,
    /// Codex catalog entries missing a field Codex requires (one rejects the whole list).
    pub incomplete: usize,
    /// Whether the model asked about is listed, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_listed: Option<bool>,
    /// Whether the model asked about takes image input (Codex catalog only; a missing
    /// `input_modalities` means text and image, as Codex reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_takes_images: Option<bool>,
}

/// A probe's request: method, Codex path, headers and body.
pub struct Request {
    pub method: http::Method,
    pub path: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: Option<Value>,
    pub shape: &'static str,
}

impl Request {
    pub fn sent(&self) -> Sent {
        Sent {
            method: self.method.to_string(),
            path: self.path.to_string(),
            shape: self.shape.to_string(),
        }
    }
}

/// The fixed text a validation probe carries where a body needs some.
const PING: &str = "ping";

/// What `probe` sends (the WebSocket probe is a handshake, not a request: `None`).
pub fn request(probe: Probe) -> Option<Request> {
    let post = http::Method::POST;
    Some(match probe {
        Probe::Models => Request {
            method: http::Method::GET,
            path: "/v1/models",
            headers: &[],
            body: None,
            shape: "no body",
        },
        Probe::Responses => Request {
            method: post,
            path: "/v1/responses",
            headers: &[("accept", "text/event-stream")],
            body: Some(
                json!({"stream": true, "store": false, "max_output_tokens": 16, "input": PING}),
            ),
            shape: "streaming, no model: a validation probe",
        },
        Probe::CompactV1 => Request {
            method: post,
            path: "/v1/responses/compact",
            headers: &[],
            body: Some(json!({"input": []})),
            shape: "no model: a validation probe",
        },
        Probe::CompactV2 => Request {
            method: post,
            path: "/v1/responses",
            headers: &[
                ("accept", "text/event-stream"),
                ("x-codex-beta-features", "remote_compaction_v2"),
            ],
            body: Some(
                json!({"stream": true, "store": false, "max_output_tokens": 16,
                "input": [{"type": "compaction_trigger"}]}),
            ),
            shape: "streaming, a compaction_trigger item, no model: a validation probe",
        },
        Probe::ImageGeneration => Request {
            method: post,
            path: "/v1/responses",
            headers: &[("accept", "text/event-stream")],
            body: Some(
                json!({"stream": true, "store": false, "max_output_tokens": 16,
                "input": PING, "tools": [{"type": "image_generation"}]}),
            ),
            shape: "streaming, the image_generation tool, no model: a validation probe",
        },
        Probe::ChatCompletions => Request {
            method: post,
            path: "/v1/chat/completions",
            headers: &[],
            body: Some(json!({"messages": []})),
            shape: "no model: a validation probe",
        },
        Probe::Websocket => return None,
    })
}

/// The item and the tool no relay knows, for the control requests.
const UNKNOWN_ITEM: &str = "codex_helper_probe_unknown_item";
const UNKNOWN_TOOL: &str = "codex_helper_probe_unknown_tool";

/// The control for a feature probe (v2 compaction, image generation): the same request with an
/// item or tool type no relay knows. A relay that refuses it checks such types before the
/// model, so the feature probe's complaint about the model means the feature got through; a
/// relay that lets it pass checks the model first, and the feature probe proves nothing.
pub fn control(probe: Probe) -> Option<(Request, &'static str)> {
    let (body, unknown) = match probe {
        Probe::CompactV2 => (
            json!({"stream": true, "store": false, "max_output_tokens": 16,
                "input": [{"type": UNKNOWN_ITEM}]}),
            UNKNOWN_ITEM,
        ),
        Probe::ImageGeneration => (
            json!({"stream": true, "store": false, "max_output_tokens": 16,
                "input": PING, "tools": [{"type": UNKNOWN_TOOL}]}),
            UNKNOWN_TOOL,
        ),
        _ => return None,
    };
    let request = Request {
        method: http::Method::POST,
        path: "/v1/responses",
        headers: &[("accept", "text/event-stream")],
        body: Some(body),
        shape: "a control: an unknown type, no model",
    };
    Some((request, unknown))
}

/// Whether a control's answer refused its unknown type.
pub fn control_refused(exchanged: &Exchanged, unknown: &str) -> bool {
    match exchanged {
        Exchanged::Reply(reply) => {
            matches!(reply.status, 400 | 422)
                && String::from_utf8_lossy(&reply.body).contains(unknown)
        }
        Exchanged::Failed { .. } => false,
    }
}

/// Judges a feature probe that got the same answer as the plain `/responses` probe, given
/// whether its control was refused ([`control`]).
pub fn judge_unreached(result: &mut ProbeResult, plain: &ProbeResult, control_refused: bool) {
    let same = result.basis == Basis::Validated
        && plain.basis == Basis::Validated
        && result.status == plain.status
        && result.reason == plain.reason;
    if !same {
        return;
    }
    let what = match result.probe {
        Probe::CompactV2 => "input item types",
        _ => "tool types",
    };
    if control_refused {
        result.reason = format!(
            "{}: the relay checks {what} before the model (it refused an unknown one) and let this one through",
            result.reason
        );
    } else {
        result.support = Support::Error;
        result.basis = Basis::Inconclusive;
        result.reason = format!(
            "{}: the relay checks the model first (an unknown {} got the same answer), so this proves nothing; only `codex relay-live-smoke` can tell",
            result.reason,
            what.trim_end_matches(" types").trim_end_matches('s')
        );
    }
}

/// Words a relay uses when it does not have something.
const REFUSING: [&str; 8] = [
    "unsupported",
    "not supported",
    "not implemented",
    "not available",
    "unknown",
    "invalid value",
    "not found",
    "not allowed",
];

/// Words a validation error about the request's fields uses.
const VALIDATING: [&str; 7] = [
    "model",
    "missing",
    "required",
    "invalid",
    "validation",
    "input",
    "parameter",
];

/// The words in an error that name `probe`'s feature.
fn feature_words(probe: Probe) -> &'static [&'static str] {
    match probe {
        Probe::CompactV1 => &["compact"],
        Probe::CompactV2 => &["compaction_trigger", "compaction"],
        Probe::ImageGeneration => &["image_generation", "image generation"],
        _ => &[],
    }
}

/// Classifies one exchange of `probe` (`model`: the model asked about, for `/models`).
pub fn classify(
    probe: Probe,
    exchanged: &Exchanged,
    model: Option<&str>,
) -> (Support, Basis, Option<u16>, String, Option<Catalog>) {
    let reply = match exchanged {
        Exchanged::Reply(reply) => reply,
        Exchanged::Failed { error, .. } => {
            return (
                Support::Error,
                Basis::Inconclusive,
                None,
                error.clone(),
                None,
            );
        }
    };
    let status = Some(reply.status);
    let (support, basis, reason, catalog) = match probe {
        Probe::Models => classify_models(reply, model),
        _ => {
            let (support, basis, reason) = classify_call(probe, reply);
            (support, basis, reason, None)
        }
    };
    (support, basis, status, reason, catalog)
}

/// The parts of a reply every probe judges the same way: redirects, auth, HTML, no path.
fn common(reply: &Reply) -> Option<(Support, Basis, String)> {
    let status = reply.status;
    if (300..400).contains(&status) {
        let to = reply
            .location_host
            .as_deref()
            .map(|h| format!(" to {h}"))
            .unwrap_or_default();
        return Some((
            Support::Error,
            Basis::Inconclusive,
            format!("HTTP {status}: a redirect{to}, not followed (is base_url right?)"),
        ));
    }
    // A key limited to some models is refused with a 403 about the (missing) model: the key
    // works, the request did not name a model it may use.
    let about_model = status == 403
        && String::from_utf8_lossy(&reply.body)
            .to_ascii_lowercase()
            .contains("model");
    if (status == 401 || status == 403) && !about_model {
        return Some((
            Support::AuthFailed,
            Basis::Refused,
            format!(
                "HTTP {status}: the relay refused the key{}",
                said(reply).map(|s| format!(": {s}")).unwrap_or_default()
            ),
        ));
    }
    if is_html(reply) {
        return Some((
            Support::Error,
            Basis::Inconclusive,
            format!(
                "HTTP {status} with an HTML page, not the API (a login or Cloudflare page, or a base_url that is the relay's website?)"
            ),
        ));
    }
    None
}

fn classify_models(
    reply: &Reply,
    model: Option<&str>,
) -> (Support, Basis, String, Option<Catalog>) {
    if let Some((support, basis, reason)) = common(reply) {
        return (support, basis, reason, None);
    }
    let status = reply.status;
    if matches!(status, 404 | 405 | 501) {
        return (
            Support::Unsupported,
            Basis::Refused,
            format!("HTTP {status}: no model list; Codex uses its bundled model metadata"),
            None,
        );
    }
    if !(200..300).contains(&status) {
        return (
            Support::Error,
            Basis::Inconclusive,
            failed_status(reply),
            None,
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return (
            Support::Error,
            Basis::Inconclusive,
            format!("HTTP {status} but not JSON{}", cut_note(reply)),
            None,
        );
    };
    if let Some(models) = body.get("models").and_then(Value::as_array) {
        let incomplete = models.iter().filter(|m| !complete_entry(m)).count();
        let entry = model.and_then(|m| models.iter().find(|e| e["slug"] == m));
        let catalog = Catalog {
            shape: "codex_catalog".into(),
            models: models.len(),
            incomplete,
            model_listed: model.map(|_| entry.is_some()),
            model_takes_images: entry.map(|e| match e.get("input_modalities") {
                Some(Value::Array(modes)) => modes.iter().any(|m| m == "image"),
                _ => true,
            }),
        };
        let mut reason = format!("Codex's catalog shape, {} models", models.len());
        if incomplete > 0 {
            reason.push_str(&format!(
                "; {incomplete} lack fields Codex requires (Codex would reject the whole list; the helper rebuilds it)"
            ));
        }
        return (Support::Supported, Basis::Answered, reason, Some(catalog));
    }
    if let Some(data) = body.get("data").and_then(Value::as_array) {
        let listed = model.map(|m| data.iter().any(|e| e["id"] == m));
        let catalog = Catalog {
            shape: "openai_list".into(),
            models: data.len(),
            incomplete: 0,
            model_listed: listed,
            model_takes_images: None,
        };
        let reason = format!(
            "an OpenAI model list, {} models: the helper translates it into Codex's catalog",
            data.len()
        );
        return (Support::Supported, Basis::Answered, reason, Some(catalog));
    }
    (
        Support::Error,
        Basis::Inconclusive,
        format!("HTTP {status}: JSON, but neither Codex's catalog nor an OpenAI list"),
        None,
    )
}

/// A Codex catalog entry with every field Codex requires (one missing empties the catalog).
fn complete_entry(entry: &Value) -> bool {
    const REQUIRED: [&str; 11] = [
        "slug",
        "display_name",
        "supported_reasoning_levels",
        "shell_type",
        "visibility",
        "supported_in_api",
        "priority",
        "base_instructions",
        "support_verbosity",
        "truncation_policy",
        "experimental_supported_tools",
    ];
    REQUIRED.iter().all(|key| entry.get(key).is_some())
}

fn classify_call(probe: Probe, reply: &Reply) -> (Support, Basis, String) {
    if let Some(verdict) = common(reply) {
        return verdict;
    }
    let status = reply.status;
    let text = String::from_utf8_lossy(&reply.body).to_ascii_lowercase();
    let names_feature = feature_words(probe).iter().any(|w| text.contains(w));
    let refuses = REFUSING.iter().any(|w| text.contains(w));
    if refuses_path(&text) {
        return (
            Support::Unsupported,
            Basis::Refused,
            format!("HTTP {status}: {}", said_or(reply, "no such path")),
        );
    }
    if (200..300).contains(&status) {
        let ct = &reply.content_type;
        let json_error = ct.starts_with("application/json")
            && serde_json::from_slice::<Value>(&reply.body)
                .is_ok_and(|b| b.get("error").is_some_and(|e| !e.is_null()));
        if json_error {
            return (
                Support::Error,
                Basis::Inconclusive,
                format!(
                    "HTTP {status} with an error inside: {}",
                    said_or(reply, "no message")
                ),
            );
        }
        let readable = ct.starts_with("text/event-stream") || ct.starts_with("application/json");
        if !readable {
            let shown = if ct.is_empty() { "no content type" } else { ct };
            return (
                Support::Error,
                Basis::Inconclusive,
                format!("HTTP {status} with {shown}: not an answer Codex can read"),
            );
        }
        return (
            Support::Supported,
            Basis::Answered,
            format!("HTTP {status}: answered even without a model"),
        );
    }
    if names_feature && refuses {
        return (
            Support::Unsupported,
            Basis::Refused,
            format!(
                "HTTP {status}: {}",
                said_or(reply, "the relay refused the feature")
            ),
        );
    }
    // A 404 about a model (a relay's "model not found") means the path exists.
    let about_model = text.contains("model") && !refuses_path(&text);
    if matches!(status, 404 | 405 | 501) && !about_model {
        return (
            Support::Unsupported,
            Basis::Refused,
            format!("HTTP {status}: {}", said_or(reply, "no such path")),
        );
    }
    if matches!(status, 400 | 403 | 404 | 422) && VALIDATING.iter().any(|w| text.contains(w)) {
        return (
            Support::Supported,
            Basis::Validated,
            format!(
                "HTTP {status}, validated: {}",
                said_or(reply, "a validation error")
            ),
        );
    }
    (Support::Error, Basis::Inconclusive, failed_status(reply))
}

/// A 404 whose text is about the URL, not about a model.
fn refuses_path(text: &str) -> bool {
    text.contains("invalid url") || text.contains("no route") || text.contains("page not found")
}

fn is_html(reply: &Reply) -> bool {
    reply.content_type.starts_with("text/html") || {
        let start = String::from_utf8_lossy(&reply.body[..reply.body.len().min(64)])
            .trim_start()
            .to_ascii_lowercase();
        start.starts_with("<!doctype html") || start.starts_with("<html")
    }
}

/// The relay's own message: `error.message` of a JSON error, else the body's start.
fn said(reply: &Reply) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(body) => body
            .pointer("/error/message")
            .or_else(|| body.get("message"))
            .or_else(|| body.get("error"))
            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
            .unwrap_or_else(|| body.to_string()),
        Err(_) => String::from_utf8_lossy(&reply.body).into_owned(),
    };
    let short = snippet(&text, 160);
    (!short.is_empty()).then_some(short)
}

fn said_or(reply: &Reply, otherwise: &str) -> String {
    said(reply).unwrap_or_else(|| otherwise.to_string())
}

fn failed_status(reply: &Reply) -> String {
    let status = reply.status;
    match said(reply) {
        Some(said) => format!("HTTP {status}: {said}"),
        None => format!("HTTP {status}"),
    }
}

fn cut_note(reply: &Reply) -> &'static str {
    if reply.truncated {
        " (and larger than the probe reads)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(status: u16, content_type: &str, body: &str) -> Exchanged {
        Exchanged::Reply(Reply {
            status,
            content_type: content_type.into(),
            location_host: None,
            body: Bytes::from(body.to_string()),
            truncated: false,
        })
    }

    fn json(status: u16, body: Value) -> Exchanged {
        reply(status, "application/json", &body.to_string())
    }

    fn verdict(probe: Probe, exchanged: &Exchanged) -> (Support, Basis) {
        let (support, basis, _, _, _) = classify(probe, exchanged, Some("gpt-5.1"));
        (support, basis)
    }

    fn error(message: &str) -> Value {
        json!({"error": {"message": message, "type": "invalid_request_error"}})
    }

    #[test]
    fn a_missing_model_complaint_proves_the_path() {
        let missing = json(400, error("Missing required parameter: 'model'."));
        for probe in [
            Probe::Responses,
            Probe::CompactV1,
            Probe::CompactV2,
            Probe::ImageGeneration,
            Probe::ChatCompletions,
        ] {
            assert_eq!(
                verdict(probe, &missing),
                (Support::Supported, Basis::Validated),
                "{probe:?}"
            );
        }
        // A relay that reports a missing model as "model not found" with a 404 has the path.
        let no_model = json(404, error("The model `` does not exist"));
        assert_eq!(
            verdict(Probe::Responses, &no_model),
            (Support::Supported, Basis::Validated)
        );
    }

    #[test]
    fn a_missing_path_or_a_refused_feature_is_unsupported() {
        let no_path = json(404, error("Invalid URL (POST /v1/responses/compact)"));
        assert_eq!(
            verdict(Probe::CompactV1, &no_path),
            (Support::Unsupported, Basis::Refused)
        );
        assert_eq!(
            verdict(Probe::Responses, &reply(405, "text/plain", "")),
            (Support::Unsupported, Basis::Refused)
        );
        let v2 = json(
            400,
            error("Invalid value: 'compaction_trigger'. Supported values are: 'message'."),
        );
        assert_eq!(
            verdict(Probe::CompactV2, &v2),
            (Support::Unsupported, Basis::Refused)
        );
        let image = json(
            400,
            error("Hosted tool 'image_generation' is not supported by this relay."),
        );
        assert_eq!(
            verdict(Probe::ImageGeneration, &image),
            (Support::Unsupported, Basis::Refused)
        );
        // A complaint about another feature says nothing against this one.
        assert_eq!(
            verdict(Probe::ImageGeneration, &v2),
            (Support::Supported, Basis::Validated)
        );
    }

    fn result(probe: Probe, exchanged: &Exchanged) -> ProbeResult {
        let (support, basis, status, reason, catalog) = classify(probe, exchanged, None);
        ProbeResult {
            probe,
            support,
            basis,
            status,
            ms: 0,
            reason,
            sent: request(probe).unwrap().sent(),
            catalog,
        }
    }

    #[test]
    fn a_feature_that_got_the_plain_answer_counts_only_if_its_control_was_refused() {
        let missing = json(400, error("Missing required parameter: 'model'."));
        let plain = result(Probe::Responses, &missing);
        let (_, unknown) = control(Probe::CompactV2).unwrap();
        let refused = json(400, error(&format!("Invalid value: '{unknown}'.")));
        assert!(control_refused(&refused, unknown));
        assert!(!control_refused(&missing, unknown));

        let mut checked_first = result(Probe::CompactV2, &missing);
        judge_unreached(&mut checked_first, &plain, true);
        assert_eq!(checked_first.support, Support::Supported);
        assert!(checked_first.reason.contains("let this one through"));

        let mut model_first = result(Probe::CompactV2, &missing);
        judge_unreached(&mut model_first, &plain, false);
        assert_eq!(
            (model_first.support, model_first.basis),
            (Support::Error, Basis::Inconclusive)
        );
        assert!(
            model_first.reason.contains("relay-live-smoke"),
            "{}",
            model_first.reason
        );

        // An explicit refusal stands, whatever the control says.
        let no = json(400, error("Invalid value: 'compaction_trigger'."));
        let mut refused_feature = result(Probe::CompactV2, &no);
        judge_unreached(&mut refused_feature, &plain, false);
        assert_eq!(refused_feature.support, Support::Unsupported);
    }

    #[test]
    fn a_url_refusal_a_model_limited_key_and_an_error_in_a_200_are_told_apart() {
        let no_route = json(400, error("Invalid URL (POST /v1/responses)"));
        assert_eq!(
            verdict(Probe::Responses, &no_route),
            (Support::Unsupported, Basis::Refused)
        );
        let limited = json(403, error("This token has no access to model "));
        assert_eq!(
            verdict(Probe::Responses, &limited),
            (Support::Supported, Basis::Validated)
        );
        let hidden = json(200, error("upstream failed"));
        assert_eq!(verdict(Probe::Responses, &hidden).0, Support::Error);
    }

    #[test]
    fn auth_redirects_pages_and_outages_are_not_support() {
        let refused = json(401, error("Incorrect API key provided."));
        let (support, _, status, reason, _) = classify(Probe::Responses, &refused, None);
        assert_eq!((support, status), (Support::AuthFailed, Some(401)));
        assert!(reason.contains("Incorrect API key"), "{reason}");

        let page = reply(
            200,
            "text/html; charset=utf-8",
            "<html><body>Log in</body></html>",
        );
        assert_eq!(verdict(Probe::Models, &page).0, Support::Error);
        let untyped = reply(200, "", "<!DOCTYPE html><html></html>");
        assert_eq!(verdict(Probe::Responses, &untyped).0, Support::Error);
        let text = reply(200, "text/plain", "ok");
        assert_eq!(verdict(Probe::Responses, &text).0, Support::Error);

        let moved = Exchanged::Reply(Reply {
            status: 302,
            content_type: String::new(),
            location_host: Some("login.example".into()),
            body: Bytes::new(),
            truncated: false,
        });
        let (support, _, _, reason, _) = classify(Probe::Responses, &moved, None);
        assert_eq!(support, Support::Error);
        assert!(reason.contains("login.example") && reason.contains("not followed"));

        let down = json(503, error("upstream unavailable"));
        assert_eq!(
            verdict(Probe::Responses, &down),
            (Support::Error, Basis::Inconclusive)
        );
        let timeout = Exchanged::Failed {
            error: "no complete answer within 1 s".into(),
            timed_out: true,
        };
        let (support, _, status, reason, _) = classify(Probe::Responses, &timeout, None);
        assert_eq!((support, status), (Support::Error, None));
        assert!(reason.contains("within 1 s"));
    }

    #[test]
    fn model_lists_are_told_apart_and_the_model_looked_up() {
        let entry = |slug: &str, modes: Option<Value>| {
            let mut e = json!({"slug": slug, "display_name": slug, "supported_reasoning_levels": [],
                "shell_type": "shell_command", "visibility": "list", "supported_in_api": true,
                "priority": 1, "base_instructions": "", "support_verbosity": false,
                "truncation_policy": {"mode": "bytes", "limit": 10000},
                "experimental_supported_tools": []});
            if let Some(modes) = modes {
                e["input_modalities"] = modes;
            }
            e
        };
        let codex = json(
            200,
            json!({"models": [entry("gpt-5.1", Some(json!(["text"]))), entry("gpt-5.5", None), {"slug": "bare"}]}),
        );
        let (support, basis, _, reason, catalog) = classify(Probe::Models, &codex, Some("gpt-5.1"));
        assert_eq!((support, basis), (Support::Supported, Basis::Answered));
        let catalog = catalog.unwrap();
        assert_eq!(
            (catalog.shape.as_str(), catalog.models, catalog.incomplete),
            ("codex_catalog", 3, 1)
        );
        assert_eq!(catalog.model_listed, Some(true));
        assert_eq!(catalog.model_takes_images, Some(false));
        assert!(reason.contains("1 lack fields"), "{reason}");
        let (_, _, _, _, catalog) = classify(Probe::Models, &codex, Some("gpt-5.5"));
        assert_eq!(
            catalog.unwrap().model_takes_images,
            Some(true),
            "no input_modalities: text and image"
        );

        let openai = json(200, json!({"object": "list", "data": [{"id": "gpt-5.1"}]}));
        let (_, _, _, reason, catalog) = classify(Probe::Models, &openai, Some("gpt-9"));
        let catalog = catalog.unwrap();
        assert_eq!(catalog.shape, "openai_list");
        assert_eq!(catalog.model_listed, Some(false));
        assert!(reason.contains("translates"), "{reason}");

        assert_eq!(
            verdict(Probe::Models, &json(404, error("not found"))),
            (Support::Unsupported, Basis::Refused)
        );
        assert_eq!(
            verdict(Probe::Models, &json(200, json!({"ok": true}))).0,
            Support::Error
        );
        assert_eq!(
            verdict(Probe::Models, &reply(200, "application/json", "{not json")).0,
            Support::Error
        );
    }

    #[test]
    fn validation_probes_carry_no_model_and_no_prompt() {
        for probe in [
            Probe::Models,
            Probe::Responses,
            Probe::CompactV1,
            Probe::CompactV2,
            Probe::ImageGeneration,
            Probe::ChatCompletions,
        ] {
            let request = request(probe).unwrap();
            if let Some(body) = &request.body {
                assert!(body.get("model").is_none(), "{probe:?}");
                let text = body.to_string();
                assert!(!text.contains("You are"), "{probe:?}");
            }
        }
        assert!(request(Probe::Websocket).is_none());
    }
}
