//! What `serve --team` limits across its instances, in one place the proxy holds: global
//! concurrency permits ([`super::permits`], with Redis only) and members' own limits
//! ([`super::member_limits`]); and the record sink that counts members' spend.

use std::sync::Arc;

use super::member_limits::{MemberLimiter, Spent};
use super::permits::GlobalPermits;
use crate::record::{Outcome, RecordSink, RequestRecord};

/// Team mode's limits.
pub struct TeamLimits {
    /// Concurrency limits across instances; `None` without `[team] redis_url`.
    pub permits: Option<GlobalPermits>,
    pub members: MemberLimiter,
}

/// The record sink that hands each member's finished, token-bearing request to the
/// limiter (priced and counted on its thread), then passes the record on.
pub struct SpendSink {
    pub inner: Arc<dyn RecordSink>,
    pub limits: Arc<TeamLimits>,
}

impl RecordSink for SpendSink {
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        let model = record
            .model_sent
            .as_deref()
            .or(record.model_requested.as_deref());
        if let (Some(member), Some(usage), Some(model)) = (&record.user, record.usage, model) {
            self.limits.members.spent(Spent {
                member: member.clone(),
                model: model.to_string(),
                usage,
                multiplier: record.price_multiplier,
                tier: record.service_tier.clone(),
                at_ms: crate::time::now_ms(),
            });
        }
        self.inner.record(record, outcome);
    }

    fn started(&self, record: &RequestRecord) {
        self.inner.started(record);
    }

    fn abandoned(&self, record: &RequestRecord) {
        self.inner.abandoned(record);
    }
}
