//! The Images API in terms of the Responses API, both ways (pure).
//!
//! An Images request (generations, or edits as JSON or as a multipart form) becomes one
//! Responses request that forces the hosted `image_generation` tool; the Responses answer
//! becomes an Images answer (`data[].b64_json`). Errors take the Images error shape
//! (`{"error":{"message","type","param","code"}}`), which OpenAI's SDKs read.

use base64::Engine;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::multipart::{self, FormError, Limits};

/// The Responses model used when the request names an Images-only model (`gpt-image-*`,
/// `dall-e-*`) or none: the original codex-helper's default (0.19+).
pub const DEFAULT_RESPONSES_MODEL: &str = "gpt-5.5";

/// The `code` of a 2xx answer without an image (the original's failure class name).
pub const MISSING_RESULT: &str = "image_generation_missing_result";

/// Reference images one edit may carry (the Images API's own limit).
const MAX_REFERENCES: usize = 16;

/// Tool options copied when given and not blank.
const TOOL_TEXT_OPTIONS: [&str; 6] = [
    "size",
    "quality",
    "background",
    "output_format",
    "moderation",
    "input_fidelity",
];

/// Options echoed in the answer when known.
const ECHOED: [&str; 4] = ["background", "output_format", "size", "quality"];

/// Which Images entrypoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Generations,
    Edits,
}

impl Entry {
    /// The entrypoint of `POST path`, with or without `/v1` (as the proxy's other routes).
    pub fn of(method: &http::Method, path: &str) -> Option<Self> {
        if method != http::Method::POST {
            return None;
        }
        let path = path.split('?').next().unwrap_or_default();
        let path = path.trim_end_matches('/');
        match path.strip_prefix("/v1").unwrap_or(path) {
            "/images/generations" => Some(Self::Generations),
            "/images/edits" => Some(Self::Edits),
            _ => None,
        }
    }
}

/// An error for the client, in the Images shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<String>,
}

impl ImagesError {
    /// A request the proxy cannot translate (400, `invalid_request_error`).
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: Some("invalid_value".into()),
        }
    }

    /// The proxy itself failed (500, `server_error`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<FormError> for ImagesError {
    fn from(e: FormError) -> Self {
        Self::invalid(None, format!("codex-helper could not read the form: {e}"))
    }
}

/// What a translated request remembers for its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translated {
    /// The Responses request body.
    pub body: Value,
    /// The client's `model` (an Images model, say), when it named one.
    pub images_model: Option<String>,
    /// The tool options asked for, echoed in the answer when the relay does not say.
    pub echo: Map<String, Value>,
}

/// Translates an Images request body (`content_type` says JSON or multipart) into a
/// Responses request.
pub fn translate(entry: Entry, content_type: &str, body: &[u8]) -> Result<Translated, ImagesError> {
    let fields = if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        if entry == Entry::Generations {
            return Err(ImagesError::invalid(
                None,
                "images/generations takes a JSON body",
            ));
        }
        form_fields(content_type, body, Limits::default())?
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(ImagesError::invalid(None, "the body is not a JSON object")),
        }
    };
    from_fields(entry, &fields)
}

/// The request as JSON fields, whatever its shape: a form's files become data URLs
/// (`images` and `mask`), its text fields strings.
fn form_fields(
    content_type: &str,
    body: &[u8],
    limits: Limits,
) -> Result<Map<String, Value>, ImagesError> {
    let mut fields = Map::new();
    let mut images = Vec::new();
    for part in multipart::parse(content_type, body, limits)? {
        let name = part.name.trim_end_matches("[]");
        if matches!(name, "image" | "mask") {
            // A file is sent as a data URL; a text field already names one (a URL).
            let url = if part.is_file() {
                data_url(part.content_type.as_deref(), part.data)
            } else {
                String::from_utf8_lossy(part.data).trim().to_string()
            };
            match name {
                "image" => images.push(json!({ "image_url": url })),
                "mask" => {
                    fields.insert("mask".into(), json!({ "image_url": url }));
                }
                _ => {}
            }
            continue;
        }
        if part.is_file() {
            continue;
        }
        let text = String::from_utf8_lossy(part.data).into_owned();
        fields.insert(name.to_string(), Value::String(text));
    }
    fields.insert("images".into(), Value::Array(images));
    Ok(fields)
}

/// A `data:` URL for a file: its declared image type, else one sniffed from its first bytes.
pub fn data_url(content_type: Option<&str>, data: &[u8]) -> String {
    let declared = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| t.starts_with("image/"));
    let sniffed = if data.starts_with(b"\x89PNG") {
        "image/png"
    } else if data.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if data.len() > 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        "image/webp"
    } else if data.starts_with(b"GIF8") {
        "image/gif"
    } else {
        "application/octet-stream"
    };
    let kind = declared.unwrap_or_else(|| sniffed.to_string());
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    format!("data:{kind};base64,{encoded}")
}

/// The Responses request for an Images request's fields.
fn from_fields(entry: Entry, fields: &Map<String, Value>) -> Result<Translated, ImagesError> {
    let text = |key: &str| text(fields, key);
    let prompt =
        text("prompt").ok_or_else(|| ImagesError::invalid(Some("prompt"), "prompt is required"))?;
    refuse_unsupported(fields)?;
    let images_model = text("model").map(str::to_string);
    let model = responses_model(text("responses_model"), images_model.as_deref());
    let (mut tool, echo) = tool_options(fields);
    let mut content = vec![json!({"type": "input_text", "text": prompt})];
    if entry == Entry::Edits {
        let references = references(fields)?;
        content.extend(references.into_iter().map(|r| input_image(&r)));
        if let Some(mask) = fields.get("mask").filter(|m| !m.is_null()) {
            let mask = reference(mask).ok_or_else(|| {
                ImagesError::invalid(
                    Some("mask"),
                    "mask must be an image URL, {image_url} or {file_id}",
                )
            })?;
            tool.insert("input_image_mask".into(), Value::Object(mask));
        }
    }
    let mut body = json!({
        "model": model,
        "input": [{"role": "user", "content": content}],
        "tools": [Value::Object(tool)],
        "tool_choice": {"type": "image_generation"},
        "stream": false,
    });
    if let Some(user) = text("user") {
        body["user"] = json!(user);
    }
    Ok(Translated {
        body,
        images_model,
        echo,
    })
}

/// A field's text, trimmed; `None` when it is absent, not a string, or blank.
fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Refuses what one non-streamed Responses call cannot give: several images, a stream, a
/// format other than `b64_json`.
fn refuse_unsupported(fields: &Map<String, Value>) -> Result<(), ImagesError> {
    check_n(fields.get("n"))?;
    if fields.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ImagesError::invalid(
            Some("stream"),
            "codex-helper does not stream Images answers; leave stream unset",
        ));
    }
    if text(fields, "response_format").is_some_and(|f| f != "b64_json") {
        return Err(ImagesError::invalid(
            Some("response_format"),
            "codex-helper answers with b64_json only",
        ));
    }
    Ok(())
}

/// The `image_generation` tool with the request's options, and the options the answer
/// echoes back.
fn tool_options(fields: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let mut tool = Map::new();
    tool.insert("type".into(), json!("image_generation"));
    let mut echo = Map::new();
    for key in TOOL_TEXT_OPTIONS {
        if let Some(value) = text(fields, key) {
            tool.insert(key.into(), json!(value));
            if ECHOED.contains(&key) {
                echo.insert(key.into(), json!(value));
            }
        }
    }
    if let Some(compression) = fields.get("output_compression").and_then(number) {
        tool.insert("output_compression".into(), json!(compression));
    }
    (tool, echo)
}

/// `n` may be absent or 1: one Responses call makes one image, and the proxy does not loop
/// (n calls would cost n times and could not fail over as one).
fn check_n(n: Option<&Value>) -> Result<(), ImagesError> {
    match n {
        None | Some(Value::Null) => Ok(()),
        Some(value) if number(value) == Some(1) => Ok(()),
        Some(_) => Err(ImagesError::invalid(
            Some("n"),
            "codex-helper supports n=1 only (one image per request)",
        )),
    }
}

/// A whole number, given as a number or (from a form) as text.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The Responses model: `responses_model` when given, else the request's `model` unless it
/// is an Images-only model, else [`DEFAULT_RESPONSES_MODEL`].
pub fn responses_model(explicit: Option<&str>, requested: Option<&str>) -> String {
    let images_only = |m: &str| {
        let m = m.to_ascii_lowercase();
        m.starts_with("gpt-image-") || m.starts_with("dall-e-") || m.starts_with("chatgpt-image")
    };
    explicit
        .or(requested.filter(|m| !images_only(m)))
        .unwrap_or(DEFAULT_RESPONSES_MODEL)
        .to_string()
}

/// An edit's reference images: `images` (an array) and/or `image` (one or an array), each a
/// URL string, `{image_url}` or `{file_id}`; 1 to [`MAX_REFERENCES`].
fn references(fields: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, ImagesError> {
    let listed = ["images", "image"]
        .into_iter()
        .filter_map(|k| fields.get(k));
    let mut found = Vec::new();
    for value in listed {
        let items = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        };
        for item in items {
            let reference = reference(item).ok_or_else(|| {
                ImagesError::invalid(
                    Some("image"),
                    "each image must be an image URL, {image_url} or {file_id} (exactly one)",
                )
            })?;
            found.push(reference);
        }
    }
    if found.is_empty() || found.len() > MAX_REFERENCES {
        return Err(ImagesError::invalid(
            Some("image"),
            format!("an edit takes 1 to {MAX_REFERENCES} images"),
        ));
    }
    Ok(found)
}

/// One image reference as `{"image_url": …}` or `{"file_id": …}`.
fn reference(value: &Value) -> Option<Map<String, Value>> {
    fn nonblank(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.trim().is_empty())
    }
    let (key, found) = match value {
        Value::String(url) => (
            "image_url",
            Some(url.as_str()).filter(|u| !u.trim().is_empty()),
        ),
        Value::Object(o) => match (nonblank(o.get("image_url")), nonblank(o.get("file_id"))) {
            (Some(url), None) => ("image_url", Some(url)),
            (None, Some(id)) => ("file_id", Some(id)),
            _ => return None,
        },
        _ => return None,
    };
    let mut out = Map::new();
    out.insert(key.into(), json!(found?));
    Some(out)
}

fn input_image(reference: &Map<String, Value>) -> Value {
    let mut item = reference.clone();
    item.insert("type".into(), json!("input_image"));
    Value::Object(item)
}

/// The Responses object in a relay's 2xx body: the body itself, or, for an event stream, the
/// `response` of its `response.completed` event.
pub fn response_object(body: &[u8], sse: bool) -> Result<Value, ImagesError> {
    if !sse {
        return serde_json::from_slice(body)
            .map_err(|_| no_image("the relay's answer is not JSON"));
    }
    let mut data = String::new();
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            data.push_str(&String::from_utf8_lossy(value));
            continue;
        }
        if !line.is_empty() {
            continue;
        }
        // A blank line ends an event.
        if let Some(found) = terminal(&std::mem::take(&mut data))? {
            return Ok(found);
        }
    }
    match terminal(&data)? {
        Some(found) => Ok(found),
        None => Err(no_image(
            "the relay's event stream ended without response.completed",
        )),
    }
}

/// The completed response in one event's data, an error for a failed one, or nothing.
fn terminal(data: &str) -> Result<Option<Value>, ImagesError> {
    if data.is_empty() {
        return Ok(None);
    }
    let Ok(mut event) = serde_json::from_str::<Value>(data) else {
        return Ok(None);
    };
    match event["type"].as_str() {
        Some("response.completed") => Ok(Some(event["response"].take())),
        Some("response.failed" | "response.incomplete" | "error") => {
            let error = event
                .pointer("/response/error")
                .or_else(|| event.get("error"))
                .cloned()
                .unwrap_or(Value::Null);
            Err(relay_error(
                StatusCode::BAD_GATEWAY,
                &error,
                "the relay's response failed",
            ))
        }
        _ => Ok(None),
    }
}

fn no_image(message: &str) -> ImagesError {
    ImagesError {
        status: StatusCode::BAD_GATEWAY,
        message: format!("codex-helper: {message}"),
        kind: "image_generation_failed",
        param: None,
        code: Some(MISSING_RESULT.into()),
    }
}

/// The Images answer for a Responses object: one `data[]` entry per finished
/// `image_generation_call`; a 502 when there is none.
pub fn images_answer(
    response: &Value,
    echo: &Map<String, Value>,
    now_secs: u64,
) -> Result<Value, ImagesError> {
    let calls: Vec<&Value> = response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "image_generation_call")
        .filter(|item| item["result"].as_str().is_some_and(|r| !r.is_empty()))
        .collect();
    if calls.is_empty() {
        let said = response
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(no_image(&format!(
            "the relay answered without an image{said}"
        )));
    }
    let data: Vec<Value> = calls
        .iter()
        .map(|call| {
            let mut entry = json!({ "b64_json": call["result"] });
            if let Some(revised) = call["revised_prompt"].as_str() {
                entry["revised_prompt"] = json!(revised);
            }
            entry
        })
        .collect();
    let mut answer = json!({
        "created": response["created_at"].as_u64().unwrap_or(now_secs),
        "data": data,
    });
    for key in ECHOED {
        if let Some(value) = calls[0]
            .get(key)
            .filter(|v| v.is_string())
            .or_else(|| echo.get(key))
        {
            answer[key] = value.clone();
        }
    }
    if let Some(usage) = images_usage(&response["usage"]) {
        answer["usage"] = usage;
    }
    Ok(answer)
}

/// The Images API's usage names, from a Responses usage object.
fn images_usage(usage: &Value) -> Option<Value> {
    let usage = usage.as_object()?;
    let mut out = Map::new();
    for key in [
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "input_tokens_details",
    ] {
        if let Some(value) = usage.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// A relay's error for the client: its own `error` fields when it gave some (`error` is the
/// relay's `error` object, a string, or anything else), else `fallback`. The caller has
/// already masked credentials in the relay's text.
pub fn relay_error(status: StatusCode, error: &Value, fallback: &str) -> ImagesError {
    let field = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
    let message = error
        .as_str()
        .map(str::to_string)
        .or_else(|| field("message"))
        .unwrap_or_else(|| fallback.to_string());
    ImagesError {
        status,
        message,
        kind: if status.is_client_error() {
            "invalid_request_error"
        } else {
            "upstream_error"
        },
        param: None,
        code: field("code").or_else(|| field("type")),
    }
}

/// A relay's non-2xx body (already redacted) as an Images error with the relay's status.
pub fn relay_failure(status: StatusCode, body: &[u8]) -> ImagesError {
    let text = String::from_utf8_lossy(body);
    let fallback = format!(
        "the relay answered HTTP {}: {}",
        status.as_u16(),
        short(text.trim())
    );
    let parsed = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    let error = parsed.get("error").cloned().unwrap_or(Value::Null);
    let mut out = relay_error(status, &error, &fallback);
    if let Some(param) = error.get("param").and_then(Value::as_str) {
        out.param = ["prompt", "image", "mask", "size", "quality", "model", "n"]
            .into_iter()
            .find(|known| *known == param);
    }
    out
}

/// The proxy's own error body (`{"error":{"type","code","message",…}}`) in the Images shape.
pub fn reshape_proxy_error(status: StatusCode, body: &[u8]) -> Value {
    let parsed = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let text = |key: &str| error[key].as_str().map(str::to_string);
    ImagesError {
        status,
        message: text("message")
            .unwrap_or_else(|| "codex-helper could not route the request".into()),
        kind: "image_generation_route_failed",
        param: None,
        code: text("code"),
    }
    .to_json()
}

/// At most a few hundred characters, on one line.
fn short(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(entry: Entry, body: Value) -> Value {
        translate(entry, "application/json", body.to_string().as_bytes())
            .unwrap()
            .body
    }

    #[test]
    fn entrypoints_with_and_without_v1() {
        let post = http::Method::POST;
        assert_eq!(
            Entry::of(&post, "/v1/images/generations"),
            Some(Entry::Generations)
        );
        assert_eq!(Entry::of(&post, "/images/edits/?x=1"), Some(Entry::Edits));
        assert_eq!(Entry::of(&http::Method::GET, "/v1/images/edits"), None);
        assert_eq!(Entry::of(&post, "/v1/responses"), None);
    }

    #[test]
    fn a_generation_becomes_a_forced_image_generation_call() {
        let body = translated(
            Entry::Generations,
            json!({"model":"gpt-image-1","prompt":" a red fox ","n":1,"size":"1024x1024",
                "quality":"high","background":"transparent","output_format":"webp",
                "output_compression":80,"moderation":"low","user":"u1","style":""}),
        );
        assert_eq!(
            body,
            json!({
                "model": DEFAULT_RESPONSES_MODEL,
                "input": [{"role":"user","content":[{"type":"input_text","text":"a red fox"}]}],
                "tools": [{"type":"image_generation","size":"1024x1024","quality":"high",
                    "background":"transparent","output_format":"webp","moderation":"low",
                    "output_compression":80}],
                "tool_choice": {"type":"image_generation"},
                "stream": false,
                "user": "u1",
            })
        );
    }

    #[test]
    fn the_responses_model_is_explicit_else_a_non_image_model_else_the_default() {
        assert_eq!(
            responses_model(Some("gpt-5.1"), Some("gpt-image-1")),
            "gpt-5.1"
        );
        assert_eq!(responses_model(None, Some("gpt-5.1")), "gpt-5.1");
        assert_eq!(
            responses_model(None, Some("DALL-E-3")),
            DEFAULT_RESPONSES_MODEL
        );
        assert_eq!(responses_model(None, None), DEFAULT_RESPONSES_MODEL);
    }

    #[test]
    fn bad_requests_are_refused_before_any_relay() {
        let refused = |body: Value| {
            translate(
                Entry::Generations,
                "application/json",
                body.to_string().as_bytes(),
            )
            .unwrap_err()
        };
        assert_eq!(refused(json!({"n":1})).param, Some("prompt"));
        assert_eq!(refused(json!({"prompt":"x","n":2})).param, Some("n"));
        assert_eq!(
            refused(json!({"prompt":"x","stream":true})).param,
            Some("stream")
        );
        assert_eq!(
            refused(json!({"prompt":"x","response_format":"url"})).param,
            Some("response_format")
        );
        let e = translate(Entry::Generations, "application/json", b"[1]").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_json(),
            json!({"error":{"message":"the body is not a JSON object","type":"invalid_request_error",
                "param":null,"code":"invalid_value"}})
        );
        let no_image =
            translate(Entry::Edits, "application/json", br#"{"prompt":"x"}"#).unwrap_err();
        assert_eq!(no_image.param, Some("image"));
        let both = json!({"prompt":"x","images":[{"image_url":"data:a","file_id":"f"}]});
        assert_eq!(
            translate(
                Entry::Edits,
                "application/json",
                both.to_string().as_bytes()
            )
            .unwrap_err()
            .param,
            Some("image")
        );
    }

    #[test]
    fn an_edit_carries_its_references_and_mask() {
        let body = translated(
            Entry::Edits,
            json!({"model":"gpt-image-1","prompt":"add a hat","input_fidelity":"high",
                "images":[{"image_url":"data:image/png;base64,AAA"},{"file_id":"file-1"}],
                "image":"https://example.com/b.png",
                "mask":{"file_id":"file-m"}}),
        );
        assert_eq!(
            body["input"][0]["content"],
            json!([{"type":"input_text","text":"add a hat"},
                {"type":"input_image","image_url":"data:image/png;base64,AAA"},
                {"type":"input_image","file_id":"file-1"},
                {"type":"input_image","image_url":"https://example.com/b.png"}])
        );
        assert_eq!(
            body["tools"][0],
            json!({"type":"image_generation","input_fidelity":"high",
                "input_image_mask":{"file_id":"file-m"}})
        );
    }

    #[test]
    fn a_multipart_edit_turns_files_into_data_urls() {
        let mut body = Vec::new();
        for (head, data) in [
            ("name=\"prompt\"", &b"add a hat"[..]),
            ("name=\"n\"", b"1"),
            ("name=\"output_compression\"", b"50"),
            (
                "name=\"image[]\"; filename=\"a.png\"\r\nContent-Type: image/png",
                b"\x89PNG1",
            ),
            ("name=\"image[]\"; filename=\"b\"", b"\xff\xd8\xff2"),
            (
                "name=\"mask\"; filename=\"m.png\"\r\nContent-Type: image/png",
                b"M",
            ),
            ("name=\"image\"", b" https://example.com/c.png "),
            ("name=\"image\"\r\nContent-Type: image/webp", b"W"),
        ] {
            body.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; {head}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--b--\r\n");
        let out = translate(Entry::Edits, "multipart/form-data; boundary=b", &body).unwrap();
        let content = &out.body["input"][0]["content"];
        assert_eq!(content[1]["image_url"], "data:image/png;base64,iVBORzE=");
        assert_eq!(content[2]["image_url"], "data:image/jpeg;base64,/9j/Mg==");
        assert_eq!(content[3]["image_url"], "https://example.com/c.png");
        assert_eq!(content[4]["image_url"], "data:image/webp;base64,Vw==");
        assert_eq!(
            out.body["tools"][0]["input_image_mask"],
            json!({"image_url":"data:image/png;base64,TQ=="})
        );
        assert_eq!(out.body["tools"][0]["output_compression"], 50);

        let missing = translate(Entry::Edits, "multipart/form-data", &body).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert!(missing.message.contains("boundary"), "{}", missing.message);
    }

    #[test]
    fn too_many_parts_or_a_large_part_is_an_images_400() {
        let mut body = Vec::new();
        for i in 0..40 {
            body.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(b"--b--");
        let e = translate(Entry::Edits, "multipart/form-data; boundary=b", &body).unwrap_err();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        );
        assert!(e.message.contains("more than 32 parts"), "{}", e.message);

        let field = "x".repeat(70 * 1024);
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n{field}\r\n--b--"
        );
        let e = translate(
            Entry::Edits,
            "multipart/form-data; boundary=b",
            body.as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("\"prompt\" is larger than"),
            "{}",
            e.message
        );
    }

    fn response(output: Value) -> Value {
        json!({"id":"resp_1","created_at":1700000000,"model":"gpt-5.5","output":output,
            "usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,
            "output_tokens_details":{"reasoning_tokens":1},"total_tokens":15}})
    }

    #[test]
    fn image_calls_become_data_with_usage_and_echoed_options() {
        let relay = response(json!([
            {"type":"reasoning","id":"rs"},
            {"type":"image_generation_call","id":"ig","status":"completed","result":"QUJD",
             "revised_prompt":"a fox, red","size":"1024x1024","output_format":"png"},
        ]));
        let mut echo = Map::new();
        echo.insert("quality".into(), json!("high"));
        echo.insert("size".into(), json!("auto"));
        let answer = images_answer(&relay, &echo, 5).unwrap();
        assert_eq!(
            answer,
            json!({"created":1700000000,"data":[{"b64_json":"QUJD","revised_prompt":"a fox, red"}],
                "size":"1024x1024","output_format":"png","quality":"high",
                "usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},
                    "output_tokens":5,"total_tokens":15}})
        );
        let no_created = json!({"output":[{"type":"image_generation_call","result":"QQ=="}]});
        let answer = images_answer(&no_created, &Map::new(), 42).unwrap();
        assert_eq!(answer, json!({"created":42,"data":[{"b64_json":"QQ=="}]}));
    }

    #[test]
    fn an_answer_without_an_image_is_a_502() {
        let relay = response(json!([{"type":"message","content":[]},
            {"type":"image_generation_call","result":""}]));
        let e = images_answer(&relay, &Map::new(), 0).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        assert_eq!(e.code.as_deref(), Some("image_generation_missing_result"));
    }

    #[test]
    fn an_event_stream_is_read_to_response_completed() {
        let done = response(json!([{"type":"image_generation_call","result":"QQ=="}]));
        let stream = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\"}}\n\n\
             : keep-alive\n\nevent: response.completed\r\ndata: {}\r\n\r\n",
            json!({"type":"response.completed","response":done})
        );
        assert_eq!(response_object(stream.as_bytes(), true).unwrap(), done);
        let failed = "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n";
        let e = response_object(failed.as_bytes(), true).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::BAD_GATEWAY, "boom")
        );
        assert_eq!(e.code.as_deref(), Some("server_error"));
        let cut = "data: {\"type\":\"response.created\"}\n\n";
        assert_eq!(
            response_object(cut.as_bytes(), true)
                .unwrap_err()
                .code
                .as_deref(),
            Some("image_generation_missing_result")
        );
    }

    #[test]
    fn relay_errors_keep_their_status_message_and_code() {
        let body = br#"{"error":{"message":"Your prompt was rejected","type":"invalid_request_error","param":"prompt","code":"moderation_blocked"}}"#;
        let e = relay_failure(StatusCode::BAD_REQUEST, body);
        assert_eq!(
            e.to_json(),
            json!({"error":{"message":"Your prompt was rejected","type":"invalid_request_error",
                "param":"prompt","code":"moderation_blocked"}})
        );
        let e = relay_failure(StatusCode::SERVICE_UNAVAILABLE, b"<html>busy</html>");
        assert_eq!(e.message, "the relay answered HTTP 503: <html>busy</html>");
        assert_eq!((e.kind, e.code), ("upstream_error", None));
        let reshaped = reshape_proxy_error(
            StatusCode::BAD_GATEWAY,
            br#"{"error":{"type":"codex_helper_error","code":"all_upstreams_failed","message":"every upstream failed","attempts":[]}}"#,
        );
        assert_eq!(
            reshaped,
            json!({"error":{"message":"every upstream failed","type":"image_generation_route_failed",
                "param":null,"code":"all_upstreams_failed"}})
        );
    }
}
