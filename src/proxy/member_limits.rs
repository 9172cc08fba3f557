//! Phase 1b in team mode: the member's own limits (`keys add --rpm N --daily-budget USD`),
//! checked and counted across the team by [`crate::shared::member_limits`]. Over a limit, a
//! streaming turn gets the `response.failed` event Codex retries by itself; anything else
//! gets 429 with `Retry-After` (to the next minute, or the next UTC midnight) and a JSON error
//! naming the limit and who can raise it. Never the key: only the member's name.

use http::{HeaderValue, Response, StatusCode, header};

use super::ProxyState;
use super::record::{Outcome, RecordGuard};
use super::relay_body::ProxyBody;
use super::replies;
use crate::shared::member_limits::Over;

/// Counts the request against its member's limits; the answer when it is over one.
pub async fn enforce(
    state: &ProxyState,
    codex_stream: bool,
    record: &mut RecordGuard,
) -> Result<(), Response<ProxyBody>> {
    let (Some(limits), Some(keys), Some(member)) = (
        state.team_limits.as_ref(),
        state.member_keys.as_ref(),
        record.user.clone(),
    ) else {
        return Ok(());
    };
    let own = keys.limits(&member);
    let now_ms = crate::time::now_ms();
    let Some(over) = limits.members.check(&member, own, now_ms).await else {
        return Ok(());
    };
    let (code, message) = explain(&member, &over);
    let retry_after = over.retry_after_secs();
    let response = if codex_stream {
        replies::retryable_event(&message, code, retry_after)
    } else {
        let mut response = replies::json_error(StatusCode::TOO_MANY_REQUESTS, code, &message);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    };
    record.status = Some(response.status().as_u16());
    record.error = Some(message);
    record.finish(Outcome::Rejected);
    Err(response)
}

/// The error code and message for `over`, naming the limit and how to raise it.
pub fn explain(member: &str, over: &Over) -> (&'static str, String) {
    match over {
        Over::Rate {
            rpm,
            retry_after_secs,
        } => (
            "member_rate_limited",
            format!(
                "codex-helper: `{member}` may make {rpm} requests a minute on this team and has made them; \
                 try again in {retry_after_secs}s. The team's admin can raise it with \
                 `codex-helper keys limit {member} --rpm N`."
            ),
        ),
        Over::Budget {
            budget_usd,
            spent_usd,
            retry_after_secs,
        } => (
            "member_budget_exhausted",
            format!(
                "codex-helper: `{member}` has spent ${spent_usd:.4} of a daily budget of ${budget_usd:.4} (UTC day); \
                 it starts again at 00:00 UTC, in {retry_after_secs}s (try again in {retry_after_secs}s). The team's admin can raise it with \
                 `codex-helper keys limit {member} --daily-budget USD`."
            ),
        ),
    }
}
