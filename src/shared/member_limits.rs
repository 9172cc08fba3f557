//! A team member's own limits: requests a minute (`keys add --rpm N`) and money a UTC day
//! (`keys add --daily-budget USD`), counted across every instance in the team's Redis.
//!
//! - Requests: one `INCR` (with an expiry) of the member's counter for the current minute,
//!   by the request, in the same script that reads the day's spend: one round trip within
//!   `[team] redis_wait_ms`. Over the limit when the count passes `rpm`.
//! - Spend: each finished request's priced cost is added (`INCRBYFLOAT`) to the member's
//!   counter for its UTC day by this module's thread, off the request's path; a request is
//!   refused while the day's spend is at or over the budget. A request already running when
//!   the budget is reached finishes: the budget can be passed by what was in flight.
//! - Redis away (or slower than the bound): both are counted on this instance alone (each
//!   instance then allows the whole limit by itself), and Redis's counts are used again as
//!   soon as it answers.
//!
//! Minutes and days are this instance's wall clock (epoch ms); instances whose clocks
//! disagree by a second or two share a counter a second or two apart.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::mpsc;

use super::redis::{KEY_PREFIX, TeamRedis, Wait};
use crate::ledger::pricing::PriceBook;
use crate::record::usage::Usage;

/// A member's limits as stored with their key; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MemberLimits {
    /// Requests a minute.
    pub rpm: Option<u32>,
    /// US dollars a UTC day, as the ledger prices requests.
    pub daily_budget_usd: Option<f64>,
}

impl MemberLimits {
    pub fn is_none(&self) -> bool {
        self.rpm.is_none() && self.daily_budget_usd.is_none()
    }
}

/// Which limit a request is over, and when it passes.
#[derive(Debug, Clone, PartialEq)]
pub enum Over {
    Rate {
        rpm: u32,
        retry_after_secs: u64,
    },
    Budget {
        budget_usd: f64,
        spent_usd: f64,
        retry_after_secs: u64,
    },
}

impl Over {
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Over::Rate {
                retry_after_secs, ..
            }
            | Over::Budget {
                retry_after_secs, ..
            } => *retry_after_secs,
        }
    }
}

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
/// A minute's counter outlives its minute a little (clocks differ between instances).
const RATE_TTL_MS: u64 = 2 * MINUTE_MS;
/// A day's spend is kept two days (for a look the day after).
const SPEND_TTL_SECS: i64 = 2 * 86_400;
/// Finished requests queued for counting at most; past it a cost is not counted.
const SPENT_QUEUE: usize = 4096;

/// The minute `now_ms` is in (minutes since the epoch).
pub fn minute_of(now_ms: u64) -> u64 {
    now_ms / MINUTE_MS
}

/// Whole seconds until the next minute starts (1–60), for `Retry-After`.
pub fn secs_to_next_minute(now_ms: u64) -> u64 {
    (MINUTE_MS - now_ms % MINUTE_MS).div_ceil(1000).clamp(1, 60)
}

/// Whole seconds until the next UTC midnight (at least 1), for `Retry-After`.
pub fn secs_to_next_utc_midnight(now_ms: u64) -> u64 {
    (DAY_MS - now_ms % DAY_MS).div_ceil(1000).max(1)
}

/// The UTC day `now_ms` is in, as `YYYY-MM-DD`.
pub fn day_of(now_ms: u64) -> String {
    let mut text = crate::codex::rollouts::rfc3339_utc(now_ms);
    text.truncate("YYYY-MM-DD".len());
    text
}

/// The Redis key counting `member`'s requests in `minute`.
pub fn rate_key(member: &str, minute: u64) -> String {
    format!("{KEY_PREFIX}rpm:{member}:{minute}")
}

/// The Redis key adding up `member`'s spend on `day` (`YYYY-MM-DD`).
pub fn spend_key(member: &str, day: &str) -> String {
    format!("{KEY_PREFIX}spend:{member}:{day}")
}

/// Whether a request with `count` requests this minute (itself included) and `spent_usd`
/// spent today is over `limits`, at `now_ms`.
pub fn verdict(limits: MemberLimits, count: u64, spent_usd: f64, now_ms: u64) -> Option<Over> {
    if let Some(budget_usd) = limits.daily_budget_usd {
        if spent_usd >= budget_usd {
            return Some(Over::Budget {
                budget_usd,
                spent_usd,
                retry_after_secs: secs_to_next_utc_midnight(now_ms),
            });
        }
    }
    match limits.rpm {
        Some(rpm) if count > u64::from(rpm) => Some(Over::Rate {
            rpm,
            retry_after_secs: secs_to_next_minute(now_ms),
        }),
        _ => None,
    }
}

/// Counts the request (when `ARGV[1]` is 1) in `KEYS[1]` and reads the day's spend in
/// `KEYS[2]`: `{count, spent}`.
static CHECK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = 0
if ARGV[1] == '1' then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local spent = redis.call('GET', KEYS[2]) or '0'
return {n, spent}
",
    )
});

/// One finished request's cost-bearing facts, priced on the limiter's thread.
pub struct Spent {
    pub member: Arc<str>,
    pub model: String,
    pub usage: Usage,
    pub multiplier: f64,
    pub tier: Option<String>,
    pub at_ms: u64,
}

/// This instance's counts, used while Redis does not answer.
#[derive(Default)]
struct Local {
    /// Per member: the minute and the requests in it.
    rate: HashMap<Arc<str>, (u64, u64)>,
    /// Per member: the day (days since the epoch) and the spend in it.
    spend: HashMap<Arc<str>, (u64, f64)>,
}

impl Local {
    fn count(&mut self, member: &str, now_ms: u64) -> u64 {
        let minute = minute_of(now_ms);
        let entry = self.rate.entry(Arc::from(member)).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1
    }

    fn spent(&self, member: &str, now_ms: u64) -> f64 {
        match self.spend.get(member) {
            Some((day, usd)) if *day == now_ms / DAY_MS => *usd,
            _ => 0.0,
        }
    }

    fn add(&mut self, member: Arc<str>, usd: f64, at_ms: u64) {
        let day = at_ms / DAY_MS;
        let entry = self.spend.entry(member).or_insert((day, 0.0));
        if entry.0 != day {
            *entry = (day, 0.0);
        }
        entry.1 += usd;
    }
}

/// Checks and counts members' limits (cheap to share).
pub struct MemberLimiter {
    redis: Option<TeamRedis>,
    local: Arc<Mutex<Local>>,
    spent: mpsc::Sender<Spent>,
}

impl MemberLimiter {
    /// Starts the thread that prices finished requests with `prices` and adds their cost to
    /// the members' day counters (in Redis when there is one, and here).
    pub fn start(redis: Option<TeamRedis>, prices: PriceBook) -> anyhow::Result<Self> {
        let local = Arc::new(Mutex::new(Local::default()));
        let (spent, queue) = mpsc::channel(SPENT_QUEUE);
        let (thread_redis, thread_local) = (redis.clone(), local.clone());
        super::spawn_worker("team-spend", move || {
            count_spend(thread_redis, prices, thread_local, queue)
        })?;
        Ok(Self {
            redis,
            local,
            spent,
        })
    }

    /// Counts a request of `member` and says whether it is over `limits` at `now_ms`.
    pub async fn check(&self, member: &str, limits: MemberLimits, now_ms: u64) -> Option<Over> {
        if limits.is_none() {
            return None;
        }
        let count_it = limits.rpm.is_some();
        let keys = [
            rate_key(member, minute_of(now_ms)),
            spend_key(member, &day_of(now_ms)),
        ];
        let shared: Option<(u64, String)> = match &self.redis {
            Some(redis) => {
                redis
                    .call(
                        Wait::Request,
                        "count a member's request",
                        |mut conn| async move {
                            let mut invocation = CHECK.prepare_invoke();
                            invocation
                                .key(&keys[..])
                                .arg(if count_it { "1" } else { "0" })
                                .arg(RATE_TTL_MS);
                            invocation.invoke_async(&mut conn).await
                        },
                    )
                    .await
            }
            None => None,
        };
        let (count, spent) = match shared {
            Some((count, spent)) => (count, spent.trim().parse().unwrap_or(0.0)),
            None => {
                let mut local = self.local.lock().expect("member limits lock");
                let count = if count_it {
                    local.count(member, now_ms)
                } else {
                    0
                };
                (count, local.spent(member, now_ms))
            }
        };
        verdict(limits, count, spent, now_ms)
    }

    /// Queues a finished request's cost for counting (never waits).
    pub fn spent(&self, spent: Spent) {
        let _ = self.spent.try_send(spent);
    }
}

/// The limiter's thread: prices each finished request and adds its cost.
async fn count_spend(
    redis: Option<TeamRedis>,
    prices: PriceBook,
    local: Arc<Mutex<Local>>,
    mut queue: mpsc::Receiver<Spent>,
) {
    while let Some(spent) = queue.recv().await {
        let cost = prices.cost_in_tier(
            &spent.model,
            &spent.usage,
            spent.multiplier,
            spent.tier.as_deref(),
        );
        let Some(usd) = cost.map(|c| c.usd).filter(|usd| *usd > 0.0) else {
            continue;
        };
        local
            .lock()
            .expect("member limits lock")
            .add(spent.member.clone(), usd, spent.at_ms);
        let Some(redis) = &redis else { continue };
        let key = spend_key(&spent.member, &day_of(spent.at_ms));
        let _: Option<()> = redis
            .call(
                Wait::Background,
                "add a member's spend",
                |mut conn| async move {
                    redis::pipe()
                        .atomic()
                        .cmd("INCRBYFLOAT")
                        .arg(&key)
                        .arg(usd)
                        .ignore()
                        .expire(&key, SPEND_TTL_SECS)
                        .ignore()
                        .query_async(&mut conn)
                        .await
                },
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_to_the_next_minute_and_utc_midnight() {
        assert_eq!(secs_to_next_minute(0), 60);
        assert_eq!(secs_to_next_minute(59_001), 1);
        assert_eq!(secs_to_next_minute(60_000 + 30_500), 30);
        // 2026-12-01T23:59:59.500Z → half a second, said as one.
        let late = 1_796_169_599_500;
        assert_eq!(day_of(late), "2026-12-01");
        assert_eq!(secs_to_next_utc_midnight(late), 1);
        assert_eq!(secs_to_next_utc_midnight(late + 500), 86_400);
        assert_eq!(day_of(late + 500), "2026-12-02");
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_709_164_800_000), "2024-02-29");
        assert_eq!(day_of(1_735_689_599_999), "2024-12-31");
        assert_eq!(
            spend_key("ann", "2024-12-31"),
            "codex-helper:spend:ann:2024-12-31"
        );
        assert_eq!(rate_key("ann", 7), "codex-helper:rpm:ann:7");
    }

    #[test]
    fn the_budget_is_checked_before_the_rate() {
        let both = MemberLimits {
            rpm: Some(2),
            daily_budget_usd: Some(1.5),
        };
        let at = 60_000 * 10 + 15_000;
        assert_eq!(verdict(both, 2, 1.49, at), None);
        assert_eq!(
            verdict(both, 3, 0.0, at),
            Some(Over::Rate {
                rpm: 2,
                retry_after_secs: 45
            })
        );
        assert!(matches!(
            verdict(both, 3, 1.5, at),
            Some(Over::Budget { budget_usd, .. }) if budget_usd == 1.5
        ));
        assert_eq!(verdict(MemberLimits::default(), 1_000, 1e9, at), None);
    }

    #[test]
    fn local_counts_start_again_each_minute_and_day() {
        let mut local = Local::default();
        assert_eq!(local.count("ann", 1_000), 1);
        assert_eq!(local.count("ann", 2_000), 2);
        assert_eq!(local.count("ann", 61_000), 1);
        local.add(Arc::from("ann"), 0.25, 1_000);
        local.add(Arc::from("ann"), 0.5, 2_000);
        assert_eq!(local.spent("ann", 3_000), 0.75);
        assert_eq!(local.spent("ann", DAY_MS + 1), 0.0);
        assert_eq!(local.spent("bob", 3_000), 0.0);
    }
}
