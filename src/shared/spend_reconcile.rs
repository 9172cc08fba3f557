//! The members' day spend counters in Redis, reconciled with the team's ledger.
//!
//! Budgets are checked against a counter per member and UTC day in Redis
//! ([`super::member_limits`]), which instances add each priced request to. A counter can fall
//! behind what was spent: Redis restarted empty, or an instance counted on its own while Redis
//! was away. So every `[team] spend_reconcile_secs` one instance (whichever takes the turn,
//! a lock with expiry) sums the day's cost per member from the PostgreSQL ledger and raises
//! each counter that is below it. A counter is never lowered: rows still on their way to the
//! ledger (batched, or spooled while the database is away) would otherwise be forgotten.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::member_limits::{day_of, spend_key};
use super::redis::{KEY_PREFIX, TeamRedis, Wait};
use crate::ledger::place::{KeptReader, LedgerPlace};
use crate::ledger::query::GroupBy;

const DAY_MS: u64 = 86_400_000;
/// A day's spend is kept two days, as [`super::member_limits`] keeps it.
const SPEND_TTL_SECS: u64 = 2 * 86_400;
/// Members reconciled in one round at most (a team has tens or hundreds).
const MAX_MEMBERS: usize = 10_000;

/// Raises a counter to the ledger's sum when it is below it; answers whether it did.
static RAISE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local ledger = tonumber(ARGV[1])
if ledger > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
",
    )
});

/// Starts the reconciling thread (every instance runs one; one of them works each period).
pub fn start(redis: TeamRedis, ledger: LedgerPlace, period: Duration) -> anyhow::Result<()> {
    let reader = Arc::new(KeptReader::new(ledger));
    super::spawn_worker("team-spend-reconcile", move || run(redis, reader, period))
}

async fn run(redis: TeamRedis, reader: Arc<KeptReader>, period: Duration) {
    let turn_key = format!("{KEY_PREFIX}turn:spend-reconcile");
    // The turn outlives most of a period, so one instance works per period.
    let turn_ms = (period.as_millis() as u64).saturating_sub(200).max(500);
    loop {
        tokio::time::sleep(period).await;
        let turn = turn_key.clone();
        let taken: Option<Option<String>> = redis
            .call(
                Wait::Background,
                "take the spend reconcile turn",
                |mut conn| async move {
                    redis::cmd("SET")
                        .arg(&turn)
                        .arg("1")
                        .arg("NX")
                        .arg("PX")
                        .arg(turn_ms)
                        .query_async(&mut conn)
                        .await
                },
            )
            .await;
        if !matches!(taken, Some(Some(_))) {
            continue;
        }
        let now_ms = crate::time::now_ms();
        let day_start = now_ms - now_ms % DAY_MS;
        let reader = reader.clone();
        let sums = tokio::task::spawn_blocking(move || {
            reader.read(|ledger| ledger.summary(day_start, GroupBy::User))
        })
        .await;
        let rows = match sums {
            Ok(Ok(Some(rows))) => rows,
            Ok(Ok(None)) => continue,
            Ok(Err(err)) => {
                tracing::debug!("spend reconcile: the ledger did not answer: {err:#}");
                continue;
            }
            Err(_) => continue,
        };
        let day = day_of(now_ms);
        for (member, usd) in member_sums(&rows) {
            let key = spend_key(member, &day);
            let value = format!("{usd}");
            let _: Option<i64> = redis
                .call(
                    Wait::Background,
                    "reconcile a member's spend",
                    |mut conn| async move {
                        RAISE
                            .key(&key)
                            .arg(&value)
                            .arg(SPEND_TTL_SECS)
                            .invoke_async(&mut conn)
                            .await
                    },
                )
                .await;
        }
    }
}

/// The members with a cost in `rows` (`usage summary --by user`), capped; requests without a
/// member (`-`) are nobody's budget.
fn member_sums(rows: &[crate::ledger::query::SummaryRow]) -> impl Iterator<Item = (&str, f64)> {
    rows.iter()
        .filter(|row| row.key != "-" && row.cost_usd > 0.0 && row.cost_usd.is_finite())
        .take(MAX_MEMBERS)
        .map(|row| (row.key.as_str(), row.cost_usd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::query::SummaryRow;

    fn row(key: &str, cost: f64) -> SummaryRow {
        SummaryRow {
            key: key.to_string(),
            requests: 1,
            errors: 0,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            total_tokens: 0,
            cache_hit_rate: 0.0,
            cost_usd: cost,
            unpriced: 0,
        }
    }

    #[test]
    fn only_members_with_a_cost_are_reconciled() {
        let rows = [
            row("ann", 0.25),
            row("-", 3.0),
            row("bob", 0.0),
            row("cy", f64::NAN),
        ];
        let sums: Vec<_> = member_sums(&rows).collect();
        assert_eq!(sums, [("ann", 0.25)]);
    }
}
