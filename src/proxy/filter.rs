//! Phase 4a of an attempt: the `filter.json` rules in force ([`crate::filter`]) applied to the
//! body about to go to a relay, after that relay's model mapping, so a rule sees (and may
//! rewrite) the model the relay gets. Over HTTP every attempt's body; over the WebSocket each
//! `response.create` message.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::ProxyState;
use super::coding;

/// Bodies past this size are filtered on a blocking thread: every rule scans the whole body.
const FILTER_INLINE_MAX: usize = 1 << 20;

/// An attempt's request with its body filtered. A body still in its content coding (the
/// proxy was told not to decode request bodies, or cannot) passes as it is: rules are about
/// text. A body labelled only `identity` is plain text, and filtered.
pub async fn request(state: &ProxyState, request: http::Request<Bytes>) -> http::Request<Bytes> {
    if !coding::listed(request.headers()).is_ok_and(|codings| codings.is_empty()) {
        return request;
    }
    let (parts, payload) = request.into_parts();
    http::Request::from_parts(parts, body(state, payload).await)
}

/// `body` with the rules in force applied (the same bytes when there are none or none
/// matched).
pub async fn body(state: &ProxyState, body: Bytes) -> Bytes {
    let rules = state.filter.get();
    if rules.is_empty() || body.is_empty() {
        return body;
    }
    if body.len() <= FILTER_INLINE_MAX {
        return rules.apply(&body).map_or(body, Bytes::from);
    }
    tokio::task::spawn_blocking(move || rules.apply(&body).map_or(body, Bytes::from))
        .await
        .expect("applying filter rules is pure and does not panic")
}

/// A `response.create` message's text with the rules applied. A result that is no longer
/// UTF-8 cannot be a text message: the message goes as it was, and the log says why.
pub async fn text(state: &ProxyState, text: Utf8Bytes) -> Utf8Bytes {
    let original = Bytes::from(text);
    let filtered = body(state, original.clone()).await;
    Utf8Bytes::try_from(filtered).unwrap_or_else(|_| {
        tracing::warn!(
            "filter.json: the rules made a WebSocket message invalid UTF-8; it was sent unfiltered"
        );
        Utf8Bytes::try_from(original).expect("a text message's bytes are UTF-8")
    })
}
