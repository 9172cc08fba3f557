//! A cap on the request bodies the proxy holds at once, across every connection.
//!
//! Each request's body is capped (`max_request_body_bytes`, `max_decoded_body_bytes`) and the
//! connections are capped (`max_client_connections`), but their product is not: a crowd of
//! clients each sending a body just under the cap could make the proxy hold tens of gigabytes.
//! The budget (`[proxy] max_request_bytes_in_flight`) is shared: a body takes its bytes as
//! they arrive and gives them back when its request is done with it. A body that would go past
//! it is refused at once (503 `request_bodies_over_budget`) rather than made to wait, because
//! half-read bodies waiting for each other's bytes could wait for ever.
//!
//! Each body is counted once, as received (and as decoded, when that is larger). The copies a
//! request makes on the way (the chunks joined, the raw body beside the decoded one while it
//! decodes, a body patched for a session's overrides or a relay's model name) are not, so
//! memory can briefly reach two to three times the budget: the budget bounds it, loosely.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes of request bodies the proxy may hold at once.
#[derive(Clone)]
pub struct BodyBudget {
    /// One permit per byte; `None` when the budget is off (`0`).
    bytes: Option<Arc<Semaphore>>,
    limit: u64,
}

/// What one request's body holds of the budget, given back when it is dropped.
#[derive(Default)]
pub struct BodyHold(Option<OwnedSemaphorePermit>);

/// The budget has no room for a body's next bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub limit: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "codex-helper already holds its limit of request bodies in flight ({} bytes, [proxy] max_request_bytes_in_flight); try again shortly",
            self.limit
        )
    }
}

impl BodyBudget {
    /// A budget of `limit` bytes; `0` means none.
    pub fn new(limit: u64) -> Self {
        let permits = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            bytes: (limit > 0).then(|| Arc::new(Semaphore::new(permits))),
            limit,
        }
    }

    /// Adds `bytes` to what `hold` holds, or fails without taking any when there is no room.
    pub fn take(&self, hold: &mut BodyHold, bytes: usize) -> Result<(), OverBudget> {
        let Some(semaphore) = &self.bytes else {
            return Ok(());
        };
        if bytes == 0 {
            return Ok(());
        }
        let over = OverBudget { limit: self.limit };
        let count = u32::try_from(bytes).map_err(|_| over)?;
        let permit = semaphore
            .clone()
            .try_acquire_many_owned(count)
            .map_err(|_| over)?;
        match &mut hold.0 {
            Some(held) => held.merge(permit),
            none => *none = Some(permit),
        }
        Ok(())
    }
}

impl BodyHold {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_the_budget_and_give_it_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut first = BodyHold::default();
        budget.take(&mut first, 60).unwrap();
        budget.take(&mut first, 30).unwrap();
        assert_eq!(first.bytes(), 90);

        let mut second = BodyHold::default();
        assert_eq!(
            budget.take(&mut second, 20),
            Err(OverBudget { limit: 100 }),
            "90 held, 20 more would pass 100"
        );
        assert_eq!(second.bytes(), 0, "a refused take holds nothing");
        budget.take(&mut second, 10).unwrap();

        drop(first);
        budget.take(&mut second, 80).unwrap();
        assert_eq!(second.bytes(), 90);
    }

    #[test]
    fn a_zero_budget_is_no_budget() {
        let budget = BodyBudget::new(0);
        let mut hold = BodyHold::default();
        budget.take(&mut hold, 1 << 30).unwrap();
        assert_eq!(hold.bytes(), 0);
    }

    #[test]
    fn a_take_larger_than_a_permit_count_is_refused_not_truncated() {
        let budget = BodyBudget::new(u64::MAX);
        let mut hold = BodyHold::default();
        assert!(budget.take(&mut hold, u32::MAX as usize + 1).is_err());
    }

    #[test]
    fn the_refusal_names_the_setting() {
        let text = OverBudget { limit: 512 }.to_string();
        assert!(text.contains("max_request_bytes_in_flight") && text.contains("512 bytes"));
    }
}
