//! One balance lookup: one adapter asking one upstream's usage endpoint.
//!
//! Split like the rest of the helper: [`prepare`] decides everything about the request (token,
//! URL, headers) as a pure function; [`fetch`] is the only IO (one bounded GET); [`look_up`]
//! joins them with [`parse::read`] and makes sure no message it returns holds a credential.
//!
//! The URL of a usage endpoint can carry a token (a templated query), so messages name only
//! its origin (`scheme://host[:port]`), never the URL.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::parse::{self, Kind};
use super::providers::UsageProvider;
use super::snapshot::Reading;
use super::template::{self, TemplateContext};
use crate::proxy::clients::RelayClient;
use crate::proxy::relay_body::ChunkStream;
use crate::redact::Redactor;
use crate::routing::Upstream;
use crate::routing::upstream::Secret;

/// Largest balance answer read: a balance is a few hundred bytes; anything near this is not
/// one, and reading on would only hold memory for a hostile or broken relay.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an error answer is read to quote from and to look for "invalid key" in.
const ERROR_PEEK_BYTES: usize = 64 * 1024;

/// How many characters of an error answer a message quotes.
const SNIPPET_CHARS: usize = 200;

/// A user-typed name (a header name) quoted in a message is cut to this many characters.
const NAME_CHARS: usize = 64;

/// Everything needed to send one lookup, decided before any IO.
pub struct LookupRequest {
    /// The endpoint, expanded. May hold a token (a templated query): never put in a message.
    pub url: String,
    /// Accept, encoding, user agent, the token's header, the adapter's own headers.
    pub headers: HeaderMap,
    pub kind: Kind,
    /// `scheme://host[:port]` of `url`: the only part of it that messages name.
    pub origin: String,
    /// The token sent, kept so that messages can be checked for it: a relay may echo the
    /// request's headers in an error body, in a shape no redactor pattern knows.
    pub token: Option<Secret>,
}

impl LookupRequest {
    /// What this request sends that a reply must not show: the token and every sensitive
    /// header value (the adapter's own headers may carry a `{{env:…}}` secret), masked the way
    /// the redactor masks a configured secret (too short a one would mask ordinary words).
    fn sent_secrets(&self) -> Redactor {
        let headers = self
            .headers
            .values()
            .filter(|v| v.is_sensitive())
            .filter_map(|v| v.to_str().ok());
        Redactor::new(self.token.iter().map(Secret::expose).chain(headers))
    }
}

/// Printed without the URL and header values, which may hold the token.
impl fmt::Debug for LookupRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupRequest")
            .field("origin", &self.origin)
            .field("kind", &self.kind)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a lookup was not sent: the reading to keep for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotAsked {
    /// An error reading, or (OpenAI costs without an admin key) a plain unknown one.
    pub reading: Reading,
    /// No token was available: asking again changes nothing until one is configured.
    pub missing_token: bool,
}

impl NotAsked {
    fn error(message: String) -> NotAsked {
        NotAsked {
            reading: failed(message),
            missing_token: false,
        }
    }
}

/// Why a sent lookup gave no JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Names the origin and the kind; holds no token.
    pub message: String,
    /// The relay said the key is invalid or the account is disabled: asking again will not
    /// help until the user acts.
    pub terminal: bool,
}

/// What a lookup needs besides the adapter and the upstream.
pub struct LookupContext<'a> {
    /// The upstream's client (`ProxyState::client_for`), so the lookup takes its route.
    pub client: &'a RelayClient,
    /// Environment lookup for `token_env` and `{{env:NAME}}`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Wall clock, epoch ms, for `{{unix_now}}` and friends.
    pub now_ms: u64,
    /// Bound on the whole lookup: connect, head and body.
    pub timeout: Duration,
    /// The plan's redactor: every message passes through it.
    pub redactor: &'a Redactor,
}

/// One lookup's result.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupOutcome {
    pub reading: Reading,
    /// See [`Failure::terminal`].
    pub terminal: bool,
    /// See [`NotAsked::missing_token`].
    pub missing_token: bool,
}

// ---- prepare (pure) -------------------------------------------------------------------------

/// Decides the request `adapter` sends for `upstream`: token, URL and headers. `Err` when it
/// cannot be sent (no token, no endpoint, a template or header that does not expand), with the
/// reading to keep instead.
///
/// The `Err` is as large as a [`Reading`]; a lookup is prepared once per poll interval, so it
/// stays unboxed, and callers keep the reading as it is.
#[allow(clippy::result_large_err)]
pub fn prepare(
    adapter: &UsageProvider,
    upstream: &Upstream,
    env: &dyn Fn(&str) -> Option<String>,
    now_ms: u64,
) -> Result<LookupRequest, NotAsked> {
    let Some(token) = token(adapter, upstream, env) else {
        return Err(no_token(adapter));
    };
    let base = upstream.base_url.to_string();
    let ctx = TemplateContext {
        upstream_base_url: &base,
        token: Some(token.expose()),
        variables: &adapter.variables,
        env,
        now_ms,
    };
    let (url, origin) = endpoint(adapter, &ctx).map_err(NotAsked::error)?;
    let headers = headers(adapter, &token, &ctx).map_err(NotAsked::error)?;
    Ok(LookupRequest {
        url,
        headers,
        kind: adapter.kind,
        origin,
        token: Some(token),
    })
}

/// The token: `token_env`'s value when set and not blank; else, unless `require_token_env`,
/// the upstream's bearer token, then its API key.
fn token(
    adapter: &UsageProvider,
    upstream: &Upstream,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    let present = |value: &str| {
        let value = value.trim();
        (!value.is_empty()).then(|| Secret::new(value))
    };
    if let Some(found) = adapter
        .token_env
        .as_deref()
        .and_then(|name| env(name.trim()))
        .and_then(|value| present(&value))
    {
        return Some(found);
    }
    if adapter.require_token_env {
        return None;
    }
    let credential = &upstream.credential;
    [&credential.bearer, &credential.api_key]
        .into_iter()
        .flatten()
        .find_map(|secret| present(secret.expose()))
}

/// No token: an error naming what to set, except for OpenAI costs, which without an admin key
/// is simply not known (the official API has no balance to be wrong about).
fn no_token(adapter: &UsageProvider) -> NotAsked {
    if adapter.kind == Kind::OpenaiOrganizationCosts {
        return NotAsked {
            reading: Reading::default(),
            missing_token: true,
        };
    }
    let hint = match (adapter.token_env.as_deref(), adapter.require_token_env) {
        (Some(name), true) => format!("set {name}; this adapter uses no other key"),
        (Some(name), false) => format!("set {name}, or give the upstream a key"),
        (None, true) => "require_token_env is set, but token_env names no variable".to_string(),
        (None, false) => "the upstream has no key; set token_env in usage_providers.json".into(),
    };
    NotAsked {
        reading: failed(format!("no usable token for {} ({hint})", adapter.id)),
        missing_token: true,
    }
}

/// The expanded endpoint and its origin; `Err` is the message.
fn endpoint(adapter: &UsageProvider, ctx: &TemplateContext) -> Result<(String, String), String> {
    let id = &adapter.id;
    let Some(template) = adapter.endpoint().or(adapter.kind.default_endpoint()) else {
        return Err(format!(
            "{id}: {} has no default endpoint; set `endpoint` in usage_providers.json",
            adapter.kind
        ));
    };
    let url = template::endpoint_url(template, ctx).map_err(|e| format!("{id}: endpoint: {e}"))?;
    // Parsed once more: the origin for messages, and a URL hyper accepts (percent-encoded).
    let invalid = || format!("{id}: the endpoint does not expand to a valid URL");
    let parsed = reqwest::Url::parse(&url).map_err(|_| invalid())?;
    if parsed.host_str().is_none() || http::Uri::try_from(parsed.as_str()).is_err() {
        return Err(invalid());
    }
    Ok((
        parsed.as_str().to_string(),
        parsed.origin().ascii_serialization(),
    ))
}

/// The request headers. The adapter's own come last and replace a default of the same name;
/// one that expands to nothing is left out. `Err` is the message: it names a header, never
/// its value.
fn headers(
    adapter: &UsageProvider,
    token: &Secret,
    ctx: &TemplateContext,
) -> Result<HeaderMap, String> {
    let id = &adapter.id;
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("codex-helper/", env!("CARGO_PKG_VERSION"))),
    );
    let (name, prefix) = adapter.kind.auth_header();
    let mut auth = HeaderValue::from_str(&format!("{prefix}{}", token.expose()))
        .map_err(|_| format!("{id}: the token holds characters a header cannot carry"))?;
    auth.set_sensitive(true);
    headers.insert(HeaderName::from_static(lower(name)), auth);
    for (name, value_template) in &adapter.headers {
        let shown: String = name.trim().chars().take(NAME_CHARS).collect();
        let value = template::render(value_template, ctx)
            .map_err(|e| format!("{id}: header `{shown}`: {e}"))?;
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{id}: `{shown}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            format!("{id}: the value of header `{shown}` is not a valid header value")
        })?;
        // Custom headers carry user ids and keys as often as not.
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The auth header names, in the lower case `HeaderName::from_static` requires.
fn lower(name: &'static str) -> &'static str {
    match name {
        "Authorization" => "authorization",
        "X-API-Key" => "x-api-key",
        other => other,
    }
}

fn failed(message: String) -> Reading {
    Reading {
        error: Some(message),
        ..Reading::default()
    }
}

// ---- terminal failures (pure) ---------------------------------------------------------------

/// What relays say when the key is wrong or the account is off, lower case: sub2api and
/// New API messages and error codes, in English and Chinese. Exhaustion ("quota exhausted",
/// "额度已用尽") is not here: it ends by itself or with a top-up, and is a reading, not a failure.
const TERMINAL_PHRASES: &[&str] = &[
    "invalid api key",
    "invalid_api_key",
    "invalid key",
    "invalid token",
    "incorrect api key",
    "api key is invalid",
    "api key not found",
    "token is invalid",
    "token is disabled",
    "token has been disabled",
    "token is expired",
    "token has expired",
    "key is disabled",
    "key has been disabled",
    "key is not valid",
    "api_key_disabled",
    "api_key_expired",
    "account inactive",
    "account is inactive",
    "account_inactive",
    "account disabled",
    "account is disabled",
    "account has been disabled",
    "account suspended",
    "account is suspended",
    "user inactive",
    "user_inactive",
    "user is disabled",
    "user has been disabled",
    "user is banned",
    "user has been banned",
    "无效的令牌",
    "令牌无效",
    "令牌已被禁用",
    "令牌已禁用",
    "该令牌状态不可用",
    "令牌已过期",
    "该令牌已过期",
    "无效的api key",
    "api key 无效",
    "用户已被封禁",
    "用户已被禁用",
    "账户已被禁用",
    "账号已被禁用",
    "账户已禁用",
    "账号已禁用",
];

/// Whether a failure will last until the user acts: the relay refused the key (401, 403), or
/// its answer says the key is invalid or the account inactive or disabled.
pub fn is_terminal(status: Option<u16>, text: &str) -> bool {
    if matches!(status, Some(401 | 403)) {
        return true;
    }
    let text = text.to_lowercase();
    TERMINAL_PHRASES.iter().any(|phrase| text.contains(phrase))
}

// ---- fetch (IO) -----------------------------------------------------------------------------

/// Sends `request` (a GET) and reads its JSON answer; the whole lookup, head and body, is
/// bounded by `timeout`. A redirect is an error, never followed (it could carry the token to
/// another host). Messages hold the origin and the kind, never the URL or the token
/// (credential shapes are masked too; [`look_up`] also masks the plan's configured secrets).
pub async fn fetch(
    client: &RelayClient,
    request: &LookupRequest,
    timeout: Duration,
) -> Result<Value, Failure> {
    fetch_with(client, request, timeout, &Redactor::default()).await
}

async fn fetch_with(
    client: &RelayClient,
    request: &LookupRequest,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Value, Failure> {
    let sent = request.sent_secrets();
    let scrub = |text: &str| scrub(text, redactor, &sent);
    match tokio::time::timeout(timeout, exchange(client, request, &scrub)).await {
        Ok(result) => result.map_err(|failure| Failure {
            message: scrub(&failure.message),
            ..failure
        }),
        Err(_) => Err(Failure {
            message: format!(
                "no answer from {} ({}) within {} ms",
                request.origin,
                request.kind,
                timeout.as_millis()
            ),
            terminal: false,
        }),
    }
}

/// The GET and its answer, unbounded in time (the caller bounds it).
async fn exchange(
    client: &RelayClient,
    request: &LookupRequest,
    scrub: &dyn Fn(&str) -> String,
) -> Result<Value, Failure> {
    let at = || format!("{} ({})", request.origin, request.kind);
    let fail = |message: String| Failure {
        message,
        terminal: false,
    };
    let mut builder = http::Request::get(request.url.as_str());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(request.headers.clone());
    }
    let http_request = builder
        .body(Bytes::new())
        .map_err(|_| fail(format!("{}: the endpoint is not a valid URL", at())))?;
    let response = client
        .send(http_request)
        .await
        .map_err(|e| fail(format!("cannot reach {}: {}", at(), e.message)))?;
    let (head, body) = response.into_parts();
    let status = head.status;
    if status.is_redirection() {
        return Err(fail(format!(
            "HTTP {} from {}: a redirect, not followed",
            status.as_u16(),
            at()
        )));
    }
    let coding = foreign_coding(&head.headers);
    if !status.is_success() {
        return Err(status_failure(status.as_u16(), &at(), coding, body, scrub).await);
    }
    if let Some(coding) = coding {
        return Err(fail(format!(
            "{} answered in content coding `{coding}`, though asked for identity",
            at()
        )));
    }
    let bytes = match read_capped(body, MAX_BODY_BYTES).await {
        Ok((bytes, false)) => bytes,
        Ok((_, true)) => {
            return Err(fail(format!(
                "the answer from {} is over {MAX_BODY_BYTES} bytes (1 MiB); not a balance",
                at()
            )));
        }
        Err(e) => return Err(fail(format!("the answer from {} broke off: {e}", at()))),
    };
    json(&head.headers, &bytes).map_err(|what| fail(format!("{} answered {what}", at())))
}

/// A non-2xx answer: its status, origin and kind, and the start of its body.
async fn status_failure(
    status: u16,
    at: &str,
    coding: Option<String>,
    body: ChunkStream,
    scrub: &dyn Fn(&str) -> String,
) -> Failure {
    // An encoded body is not decoded for a message, and one that breaks off is not quoted.
    let text = match coding {
        Some(_) => String::new(),
        None => match read_capped(body, ERROR_PEEK_BYTES).await {
            Ok((bytes, _)) => scrub(&String::from_utf8_lossy(&bytes)),
            Err(_) => String::new(),
        },
    };
    let snippet = snippet(&text);
    let message = if snippet.is_empty() {
        format!("HTTP {status} from {at}")
    } else {
        format!("HTTP {status} from {at}: {snippet}")
    };
    Failure {
        message,
        terminal: is_terminal(Some(status), &text),
    }
}

/// The first content coding other than identity, if any.
fn foreign_coding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("(not text)").split(','))
        .map(|coding| coding.trim().to_ascii_lowercase())
        .find(|coding| !coding.is_empty() && coding != "identity")
}

/// Reads `body` until it ends or holds more than `max` bytes, chunk by chunk; `true` when it
/// went over (the rest is left unread).
async fn read_capped(mut body: ChunkStream, max: usize) -> std::io::Result<(BytesMut, bool)> {
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() > max {
            return Ok((bytes, true));
        }
    }
    Ok((bytes, false))
}

/// The body as JSON, or what it was instead ("an HTML page", "something that is not JSON").
fn json(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, String> {
    let html_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/html"));
    let starts_with_tag = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<');
    if html_type || starts_with_tag {
        return Err(
            "with an HTML page, not JSON (a login or challenge page, or not the \
                    balance endpoint?)"
                .into(),
        );
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("with an empty body, not JSON".into());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| format!("with something that is not JSON ({})", json_error(&e)))
}

/// `serde_json`'s error category, without positions or quoted input.
fn json_error(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "data error",
        serde_json::error::Category::Eof => "it ends too early",
    }
}

/// At most [`SNIPPET_CHARS`] characters of `text`, whitespace runs made one space.
fn snippet(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = joined.chars();
    let kept: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        kept + "…"
    } else {
        kept
    }
}

/// `text` with credentials masked: the redactor's, then the token itself (which may have no
/// credential shape at all). Applied to whole texts, before any cut, so no token is cut in
/// half past the redactor's reach.
fn scrub(text: &str, redactor: &Redactor, sent: &Redactor) -> String {
    sent.redact(&redactor.redact(text)).into_owned()
}

// ---- the lookup -----------------------------------------------------------------------------

/// One lookup of `adapter` for `upstream`: prepare, fetch, read. Never fails: what went wrong
/// is the reading's error, passed through the redactor and free of the token used.
pub async fn look_up(
    ctx: &LookupContext<'_>,
    adapter: &UsageProvider,
    upstream: &Upstream,
) -> LookupOutcome {
    let request = match prepare(adapter, upstream, ctx.env, ctx.now_ms) {
        Ok(request) => request,
        Err(not_asked) => {
            return LookupOutcome {
                reading: scrubbed(not_asked.reading, ctx.redactor, &Redactor::default()),
                terminal: false,
                missing_token: not_asked.missing_token,
            };
        }
    };
    let sent = request.sent_secrets();
    match fetch_with(ctx.client, &request, ctx.timeout, ctx.redactor).await {
        Ok(body) => {
            let reading = parse::read(
                adapter.kind,
                &body,
                &adapter.extract,
                upstream.base_url.path(),
            );
            let terminal = reading
                .error
                .as_deref()
                .is_some_and(|error| is_terminal(None, error));
            LookupOutcome {
                reading: scrubbed(reading, ctx.redactor, &sent),
                terminal,
                missing_token: false,
            }
        }
        Err(failure) => LookupOutcome {
            reading: failed(scrub(&failure.message, ctx.redactor, &sent)),
            terminal: failure.terminal,
            missing_token: false,
        },
    }
}

/// `reading` with its error scrubbed (the relay's own message may quote the request).
fn scrubbed(mut reading: Reading, redactor: &Redactor, sent: &Redactor) -> Reading {
    if let Some(error) = reading.error.take() {
        reading.error = Some(scrub(&error, redactor, sent));
    }
    reading
}

// ---- tests ----------------------------------------------------------------------------------

/// A loopback relay for the lookup and discovery tests: answers each request from a function
/// of its path and head, over hand-written HTTP/1.1, one request per connection.
#[cfg(test)]
pub(super) mod test_relay {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::proxy::clients::{RelayClient, UpstreamClients};
    use crate::routing::Upstream;
    use crate::routing::outbound::Route;
    use crate::routing::upstream::{BaseUrl, Credential, EndpointKey, Secret};

    /// What the relay does with one request.
    pub enum Answer {
        /// These bytes, as the whole response.
        Bytes(Vec<u8>),
        /// Nothing: the connection is held open, unanswered.
        Silent,
    }

    /// A response with `Content-Length` and `Connection: close`.
    pub fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        Answer::Bytes(bytes)
    }

    pub fn json(status: u16, body: &str) -> Answer {
        http(
            status,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    pub struct TestRelay {
        /// `http://127.0.0.1:<port>`.
        pub origin: String,
        /// The request paths seen, in order.
        pub seen: Arc<Mutex<Vec<String>>>,
    }

    impl TestRelay {
        pub fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    type Handler = dyn Fn(&str, &str) -> Answer + Send + Sync;

    /// Starts the relay on the current runtime; `answer(path, head)` decides each reply. It
    /// stops with the runtime (the end of the test).
    pub async fn start(answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> TestRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Handler> = Arc::new(answer);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer.clone(), log.clone()));
            }
        });
        TestRelay { origin, seen }
    }

    async fn serve(mut stream: TcpStream, answer: Arc<Handler>, seen: Arc<Mutex<Vec<String>>>) {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let read_head = async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            true
        };
        if !tokio::time::timeout(Duration::from_secs(5), read_head)
            .await
            .unwrap_or(false)
        {
            return;
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
        seen.lock().unwrap().push(path.clone());
        match answer(&path, &head) {
            Answer::Bytes(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            Answer::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    }

    /// The value of header `name` in a request head (case-insensitive name).
    pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// A direct client, as the proxy builds them.
    pub fn client() -> RelayClient {
        crate::proxy::install_tls_provider();
        UpstreamClients::new(Duration::from_secs(2), None)
            .get(&Route::Direct)
            .unwrap()
    }

    /// The upstream `p.e` at `base`, with a bearer token and an API key when given.
    pub fn upstream(base: &str, bearer: Option<&str>, api_key: Option<&str>) -> Upstream {
        Upstream {
            key: EndpointKey::new("p", "e"),
            provider: "p".into(),
            endpoint: "e".into(),
            base_url: BaseUrl::parse(base).unwrap(),
            credential: Credential {
                bearer: bearer.map(Secret::new),
                api_key: api_key.map(Secret::new),
                missing_env: Vec::new(),
            },
            tags: Default::default(),
            model_mapping: Default::default(),
            supported_models: Default::default(),
            limit: None,
            price_multiplier: 1.0,
            outbound: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_relay::{self, Answer, header, http, json, upstream};
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;
    const TOKEN: &str = "sk-relay-token-0123456789";

    fn env(name: &str) -> Option<String> {
        match name {
            "USAGE_TOKEN" => Some("usage-token-from-env-42".into()),
            "BLANK" => Some("  ".into()),
            "RELAY_USER" => Some("1234".into()),
            "EMPTY" => Some(String::new()),
            "OPENAI_ADMIN_KEY_SET" => Some("sk-admin-abcdefghijkl".into()),
            _ => None,
        }
    }

    fn adapter(kind: Kind) -> UsageProvider {
        UsageProvider::auto("relay", kind)
    }

    #[allow(clippy::result_large_err)]
    fn prep(adapter: &UsageProvider, upstream: &Upstream) -> Result<LookupRequest, NotAsked> {
        prepare(adapter, upstream, &env, NOW_MS)
    }

    fn auth(request: &LookupRequest) -> &str {
        request.headers["authorization"].to_str().unwrap()
    }

    fn error_of(not_asked: NotAsked) -> String {
        not_asked.reading.error.expect("an error reading")
    }

    #[test]
    fn token_from_env_then_bearer_then_api_key() {
        let both = upstream(
            "https://r.example/v1",
            Some("bearer-tok"),
            Some("api-key-tok"),
        );
        let key_only = upstream("https://r.example/v1", None, Some("api-key-tok"));
        let mut a = adapter(Kind::Sub2apiUsage);
        assert_eq!(auth(&prep(&a, &both).unwrap()), "Bearer bearer-tok");
        assert_eq!(auth(&prep(&a, &key_only).unwrap()), "Bearer api-key-tok");
        a.token_env = Some("USAGE_TOKEN".into());
        assert_eq!(
            auth(&prep(&a, &both).unwrap()),
            "Bearer usage-token-from-env-42"
        );
        for unset in ["BLANK", "EMPTY", "NOT_SET"] {
            a.token_env = Some(unset.into());
            assert_eq!(
                auth(&prep(&a, &both).unwrap()),
                "Bearer bearer-tok",
                "{unset}"
            );
        }
    }

    #[test]
    fn require_token_env_never_uses_the_upstream_key() {
        let both = upstream("https://r.example", Some("bearer-tok"), Some("api-key-tok"));
        let mut a = adapter(Kind::NewApiUserSelf);
        a.require_token_env = true;
        a.token_env = Some("NOT_SET".into());
        let not_asked = prep(&a, &both).unwrap_err();
        assert!(not_asked.missing_token);
        let error = error_of(not_asked);
        assert!(
            error.starts_with("no usable token for relay (set NOT_SET"),
            "{error}"
        );
        assert!(!error.contains("bearer-tok") && !error.contains("api-key-tok"));
        a.token_env = Some("USAGE_TOKEN".into());
        assert_eq!(
            auth(&prep(&a, &both).unwrap()),
            "Bearer usage-token-from-env-42"
        );
    }

    #[test]
    fn no_token_is_an_error_naming_the_adapter() {
        let bare = upstream("https://r.example", None, Some("  "));
        let not_asked = prep(&adapter(Kind::Sub2apiUsage), &bare).unwrap_err();
        assert!(not_asked.missing_token);
        let error = error_of(not_asked);
        assert!(
            error.starts_with("no usable token for relay (") && error.contains("token_env"),
            "{error}"
        );
    }

    #[test]
    fn openai_costs_without_an_admin_key_is_unknown_not_an_error() {
        let mut a = adapter(Kind::OpenaiOrganizationCosts);
        a.token_env = Some("OPENAI_ADMIN_KEY".into());
        a.require_token_env = true;
        let openai = upstream(
            "https://api.openai.com/v1",
            Some("sk-user-key-123456"),
            None,
        );
        let not_asked = prep(&a, &openai).unwrap_err();
        assert_eq!(not_asked.reading, Reading::default());
        assert!(not_asked.missing_token);
        a.token_env = Some("OPENAI_ADMIN_KEY_SET".into());
        let request = prep(&a, &openai).unwrap();
        assert_eq!(auth(&request), "Bearer sk-admin-abcdefghijkl");
        let start = (NOW_MS / 1000 - 30 * 86_400).to_string();
        assert_eq!(
            request.url,
            format!("https://api.openai.com/v1/organization/costs?start_time={start}&limit=30")
        );
    }

    #[test]
    fn yescode_sends_its_key_bare_in_x_api_key() {
        let mut a = adapter(Kind::YescodeProfile);
        a.endpoint = Some("https://co.yes.vg/api/v1/auth/profile".into());
        let request = prep(&a, &upstream("https://co.yes.vg", Some("yes-key-1"), None)).unwrap();
        assert_eq!(request.headers["x-api-key"], "yes-key-1");
        assert!(request.headers.get("authorization").is_none());
        assert!(request.headers["x-api-key"].is_sensitive());
        assert_eq!(request.origin, "https://co.yes.vg");
    }

    #[test]
    fn default_headers_and_url_from_the_kind() {
        let request = prep(
            &adapter(Kind::Sub2apiUsage),
            &upstream("https://r.example:8443/v1/", Some("t0k3n"), None),
        )
        .unwrap();
        assert_eq!(request.url, "https://r.example:8443/v1/usage");
        assert_eq!(request.origin, "https://r.example:8443");
        assert_eq!(request.kind, Kind::Sub2apiUsage);
        assert_eq!(request.headers["accept"], "application/json");
        assert_eq!(request.headers["accept-encoding"], "identity");
        assert_eq!(
            request.headers["user-agent"],
            concat!("codex-helper/", env!("CARGO_PKG_VERSION"))
        );
        assert!(request.headers["authorization"].is_sensitive());
        let shown = format!("{request:?}");
        assert!(!shown.contains("t0k3n"), "{shown}");
    }

    #[test]
    fn custom_headers_rendered_empty_ones_skipped() {
        let mut a = adapter(Kind::NewApiUserSelf);
        a.variables
            .insert("uid".into(), "{{env:RELAY_USER}}".into());
        a.headers.insert("New-Api-User".into(), "{{uid}}".into());
        a.headers.insert("X-Empty".into(), "{{env:EMPTY}}".into());
        a.headers.insert("X-Blank".into(), "  ".into());
        a.headers
            .insert("X-Token-Again".into(), "t={{token}}".into());
        let request = prep(&a, &upstream("https://r.example", Some("tok-9"), None)).unwrap();
        assert_eq!(request.headers["new-api-user"], "1234");
        assert_eq!(request.headers["x-token-again"], "t=tok-9");
        assert!(request.headers.get("x-empty").is_none());
        assert!(request.headers.get("x-blank").is_none());
        assert_eq!(request.url, "https://r.example/api/user/self");
    }

    #[test]
    fn a_configured_header_replaces_the_default_of_its_name() {
        let mut a = adapter(Kind::Sub2apiUsage);
        a.headers
            .insert("Authorization".into(), "Token {{token}}".into());
        let request = prep(&a, &upstream("https://r.example", Some("tok-9"), None)).unwrap();
        assert_eq!(auth(&request), "Token tok-9");
        assert_eq!(request.headers.get_all("authorization").iter().count(), 1);
    }

    #[test]
    fn bad_headers_name_the_header_never_the_value() {
        let up = upstream("https://r.example", Some("secret-token-77"), None);
        let mut a = adapter(Kind::Sub2apiUsage);
        a.headers.insert("Bad Name".into(), "{{token}}".into());
        let error = error_of(prep(&a, &up).unwrap_err());
        assert!(error.contains("`Bad Name`"), "{error}");
        assert!(!error.contains("secret-token-77"), "{error}");

        let mut a = adapter(Kind::Sub2apiUsage);
        a.headers
            .insert("X-Bad-Value".into(), "{{token}}\u{7f}x".into());
        let error = error_of(prep(&a, &up).unwrap_err());
        assert!(error.contains("`X-Bad-Value`"), "{error}");
        assert!(!error.contains("secret-token-77"), "{error}");

        let mut a = adapter(Kind::Sub2apiUsage);
        a.headers.insert("X-Missing".into(), "{{env:NOPE}}".into());
        let error = error_of(prep(&a, &up).unwrap_err());
        assert!(
            error.contains("relay: header `X-Missing`") && error.contains("`NOPE`"),
            "{error}"
        );
        assert!(!prep(&a, &up).unwrap_err().missing_token);
    }

    #[test]
    fn endpoint_templates_and_missing_default_endpoint() {
        let up = upstream("https://r.example/codex", Some("tok"), None);
        let mut a = adapter(Kind::Budget);
        let not_asked = prep(&a, &up).unwrap_err();
        assert!(!not_asked.missing_token);
        let error = error_of(not_asked);
        assert!(
            error.contains("relay") && error.contains("budget_http_json"),
            "{error}"
        );
        a.endpoint = Some("/api/backend/users/info?key={{token}}".into());
        let request = prep(&a, &up).unwrap();
        assert_eq!(
            request.url,
            "https://r.example/codex/api/backend/users/info?key=tok"
        );
        assert_eq!(request.origin, "https://r.example");
        a.endpoint = Some("{{nope}}/x".into());
        let error = error_of(prep(&a, &up).unwrap_err());
        assert!(
            error.starts_with("relay: endpoint: unknown placeholder"),
            "{error}"
        );
        a.endpoint = Some("https:// bad host/{{token}}".into());
        let error = error_of(prep(&a, &up).unwrap_err());
        assert!(!error.contains("tok"), "{error}");
    }

    #[test]
    fn terminal_messages_from_sub2api_and_new_api() {
        for text in [
            "Invalid API key",
            r#"{"code":"INVALID_API_KEY","message":"Invalid API key"}"#,
            r#"{"error":{"message":"API key is disabled","type":"API_KEY_DISABLED"}}"#,
            r#"{"success":false,"message":"用户已被封禁"}"#,
            r#"{"success":false,"message":"该令牌状态不可用"}"#,
            r#"{"error":{"message":"无效的令牌 (request id: 2024)","type":"new_api_error"}}"#,
            "token is disabled",
            "account inactive",
            "sub2api: the key is not valid",
            r#"{"code":"USER_INACTIVE","message":"user account is disabled"}"#,
            "This API key has been disabled.",
            "Your account has been disabled",
            r#"{"code":"USER_INACTIVE","message":"User is inactive"}"#,
        ] {
            assert!(is_terminal(Some(200), text), "{text}");
            assert!(is_terminal(None, text), "{text}");
        }
        assert!(is_terminal(Some(401), "whatever"));
        assert!(is_terminal(Some(403), ""));
        for (status, text) in [
            (Some(429), "rate limit exceeded"),
            (Some(500), "internal server error"),
            (Some(503), "upstream overloaded"),
            (None, r#"{"success":false,"message":"该令牌额度已用尽"}"#),
            (None, "quota exhausted"),
            (Some(400), "invalid request: missing field"),
            (Some(404), "404 page not found"),
        ] {
            assert!(!is_terminal(status, text), "{status:?} {text}");
        }
    }

    #[test]
    fn snippets_are_short_and_one_line() {
        assert_eq!(snippet("  a\n\n b\tc  "), "a b c");
        let long = "x".repeat(500);
        assert_eq!(snippet(&long).chars().count(), SNIPPET_CHARS + 1);
        assert_eq!(snippet(""), "");
    }

    #[test]
    fn scrub_masks_the_token_even_without_a_credential_shape() {
        let text = scrub(
            "bad key plainsecret12345 (again plainsecret12345)",
            &Redactor::default(),
            &Redactor::new(["plainsecret12345"]),
        );
        assert_eq!(text, "bad key [redacted] (again [redacted])");
    }

    #[test]
    fn scrub_leaves_text_alone_for_a_token_too_short_to_be_a_key() {
        let text = scrub(
            "cannot reach https://m.example",
            &Redactor::default(),
            &Redactor::new(["x"]),
        );
        assert_eq!(text, "cannot reach https://m.example");
    }

    // ---- IO --------------------------------------------------------------------------------

    const SUB2API: &str = r#"{"isValid":true,"mode":"quota_limited","planName":"Pro",
        "quota":{"remaining":12.5,"limit":20,"used":7.5},"usage":{"today":{"requests":3}}}"#;

    fn ctx<'a>(client: &'a RelayClient, redactor: &'a Redactor) -> LookupContext<'a> {
        LookupContext {
            client,
            env: &env,
            now_ms: NOW_MS,
            timeout: Duration::from_millis(300),
            redactor,
        }
    }

    /// `look_up` with the sub2api adapter against a relay answering every request with
    /// `answer`; the outcome and the paths asked.
    async fn look_up_with(
        answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
    ) -> (LookupOutcome, Vec<String>, String) {
        let relay = test_relay::start(answer).await;
        let client = test_relay::client();
        let redactor = Redactor::default();
        let up = upstream(&format!("{}/v1", relay.origin), Some(TOKEN), None);
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            look_up(&ctx(&client, &redactor), &adapter(Kind::Sub2apiUsage), &up),
        )
        .await
        .expect("the lookup ends");
        (outcome, relay.seen(), relay.origin)
    }

    fn error(outcome: &LookupOutcome) -> &str {
        outcome.reading.error.as_deref().expect("an error reading")
    }

    #[tokio::test]
    async fn json_answer_is_read_by_its_kind() {
        let (outcome, seen, _) = look_up_with(|_, head| {
            assert_eq!(
                header(head, "authorization"),
                Some("Bearer sk-relay-token-0123456789")
            );
            assert_eq!(header(head, "accept-encoding"), Some("identity"));
            json(200, SUB2API)
        })
        .await;
        assert_eq!(seen, ["/v1/usage"]);
        assert_eq!(outcome.reading.error, None);
        assert!(!outcome.terminal && !outcome.missing_token);
        let amounts = &outcome.reading.amounts;
        assert_eq!(amounts.quota_remaining, Some("12.5".parse().unwrap()));
        assert_eq!(amounts.plan_name.as_deref(), Some("Pro"));
        assert_eq!(outcome.reading.exhausted, Some(false));
    }

    #[tokio::test]
    async fn server_error_names_origin_kind_and_quotes_the_body() {
        let (outcome, _, origin) = look_up_with(|_, _| json(500, r#"{"error":"boom"}"#)).await;
        let error = error(&outcome);
        assert!(
            error.starts_with(&format!("HTTP 500 from {origin} (sub2api_usage): ")),
            "{error}"
        );
        assert!(error.contains("boom"), "{error}");
        assert!(!error.contains("/v1/usage"), "no URL: {error}");
        assert!(!outcome.terminal);
    }

    #[tokio::test]
    async fn html_is_not_json() {
        let (outcome, _, _) = look_up_with(|_, _| {
            http(
                200,
                &[("Content-Type", "text/html; charset=utf-8")],
                b"<!doctype html><title>Login</title>",
            )
        })
        .await;
        assert!(
            error(&outcome).contains("HTML page, not JSON"),
            "{}",
            error(&outcome)
        );
        let (outcome, _, _) = look_up_with(|_, _| json(200, "balance: 3")).await;
        assert!(error(&outcome).contains("not JSON"), "{}", error(&outcome));
    }

    #[tokio::test]
    async fn redirects_are_errors_and_not_followed() {
        let (outcome, seen, _) = look_up_with(|path, _| {
            if path == "/v1/usage" {
                http(302, &[("Location", "/elsewhere")], b"")
            } else {
                json(200, SUB2API)
            }
        })
        .await;
        assert!(
            error(&outcome).starts_with("HTTP 302 from "),
            "{}",
            error(&outcome)
        );
        assert!(error(&outcome).contains("not followed"));
        assert_eq!(seen, ["/v1/usage"]);
    }

    #[tokio::test]
    async fn compressed_answers_are_refused() {
        let (outcome, _, _) =
            look_up_with(|_, _| http(200, &[("Content-Encoding", "gzip")], b"\x1f\x8b")).await;
        assert!(error(&outcome).contains("`gzip`"), "{}", error(&outcome));
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_errors() {
        let (outcome, _, _) = look_up_with(|_, _| {
            let mut body = b"{\"pad\":\"".to_vec();
            body.resize(MAX_BODY_BYTES + 10, b'x');
            body.extend_from_slice(b"\"}");
            http(200, &[("Content-Type", "application/json")], &body)
        })
        .await;
        assert!(
            error(&outcome).contains("over 1048576 bytes"),
            "{}",
            error(&outcome)
        );
    }

    #[tokio::test]
    async fn a_relay_that_never_answers_times_out() {
        let started = std::time::Instant::now();
        let (outcome, _, origin) = look_up_with(|_, _| Answer::Silent).await;
        assert_eq!(
            error(&outcome),
            format!("no answer from {origin} (sub2api_usage) within 300 ms")
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_echoed_token_is_terminal_and_never_shown() {
        // The relay quotes our Authorization header back, in a shape no pattern knows.
        let (outcome, _, _) = look_up_with(|_, head| {
            let auth = header(head, "authorization").unwrap_or_default();
            let token = auth.trim_start_matches("Bearer ");
            json(
                401,
                &format!(r#"{{"message":"Invalid API key","got":"{token}"}}"#),
            )
        })
        .await;
        let error = error(&outcome);
        assert!(outcome.terminal);
        assert!(error.starts_with("HTTP 401 from"), "{error}");
        assert!(!error.contains(TOKEN), "{error}");
        assert!(!error.contains("0123456789"), "{error}");
    }

    #[tokio::test]
    async fn a_token_in_a_200_business_error_is_never_shown() {
        // A plain token (no `sk-` shape) echoed in the relay's own message.
        let relay = test_relay::start(|_, head| {
            let token = header(head, "authorization")
                .unwrap_or_default()
                .replace("Bearer ", "");
            json(
                200,
                &format!(r#"{{"isValid":false,"message":"token is disabled: {token}"}}"#),
            )
        })
        .await;
        let client = test_relay::client();
        let redactor = Redactor::default();
        let up = upstream(&relay.origin, Some("plainsecret12345"), None);
        let outcome = look_up(&ctx(&client, &redactor), &adapter(Kind::Sub2apiUsage), &up).await;
        let error = error(&outcome);
        assert!(outcome.terminal, "{error}");
        assert_eq!(error, "token is disabled: [redacted]");
    }

    #[tokio::test]
    async fn a_secret_sent_in_a_custom_header_is_never_shown() {
        // The relay quotes a header whose value came from `{{env:…}}`.
        let relay = test_relay::start(|_, head| {
            let user = header(head, "x-relay-session").unwrap_or_default();
            json(500, &format!(r#"{{"message":"session {user} rejected"}}"#))
        })
        .await;
        let client = test_relay::client();
        let redactor = Redactor::default();
        let up = upstream(&relay.origin, Some(TOKEN), None);
        let mut a = adapter(Kind::Sub2apiUsage);
        a.headers
            .insert("X-Relay-Session".into(), "{{env:USAGE_TOKEN}}".into());
        let outcome = look_up(&ctx(&client, &redactor), &a, &up).await;
        let error = error(&outcome);
        assert!(!error.contains("usage-token-from-env-42"), "{error}");
        assert!(error.contains("session [redacted] rejected"), "{error}");
    }

    #[tokio::test]
    async fn the_redactor_masks_other_configured_secrets() {
        let relay =
            test_relay::start(|_, _| json(500, "upstream key other-secret-998877 failed")).await;
        let client = test_relay::client();
        let redactor = Redactor::new(["other-secret-998877"]);
        let up = upstream(&relay.origin, Some(TOKEN), None);
        let outcome = look_up(&ctx(&client, &redactor), &adapter(Kind::Sub2apiUsage), &up).await;
        let error = error(&outcome);
        assert!(error.ends_with("upstream key [redacted] failed"), "{error}");
    }

    #[tokio::test]
    async fn not_asked_sends_nothing() {
        let relay = test_relay::start(|_, _| json(200, SUB2API)).await;
        let client = test_relay::client();
        let redactor = Redactor::default();
        let up = upstream(&relay.origin, None, None);
        let outcome = look_up(&ctx(&client, &redactor), &adapter(Kind::Sub2apiUsage), &up).await;
        assert!(outcome.missing_token && !outcome.terminal);
        assert!(error(&outcome).starts_with("no usable token for relay"));
        assert!(relay.seen().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_an_error_naming_the_origin() {
        // A port nothing listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = test_relay::client();
        let redactor = Redactor::default();
        let up = upstream(&origin, Some(TOKEN), None);
        let outcome = look_up(&ctx(&client, &redactor), &adapter(Kind::Sub2apiUsage), &up).await;
        let error = error(&outcome);
        assert!(
            error.starts_with(&format!("cannot reach {origin} (sub2api_usage): ")),
            "{error}"
        );
    }
}
