//! Retry and failover policy: what a failed attempt means and what to do next.
//!
//! Pure. [`classify_status`] names the failure; [`RetryPolicy::decide`] turns a failure and
//! the number of tries so far into: hand the response to the client, try the same endpoint
//! again after a delay, or fail over (and how long to cool the endpoint down).

use serde::Serialize;

use crate::config::model::{RetryConfig, RetryProfile};

use super::health::CooldownPolicy;

pub mod rules;
use rules::RetryRules;

/// The resolved `[retry]` values.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub profile: RetryProfile,
    pub same_upstream_attempts: u32,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    pub jitter_ms: u64,
    pub retry_after_max_ms: u64,
    pub cooldown: CooldownPolicy,
    pub cloudflare_challenge_cooldown_secs: u64,
    /// Cooldown after a Cloudflare 524; `None`: like any retryable failure.
    pub cloudflare_timeout_cooldown_secs: Option<u64>,
    pub first_event_timeout_ms: u64,
    /// Which statuses and classes are retried, failed over or handed back (see
    /// [`rules`]).
    pub rules: RetryRules,
}

impl RetryPolicy {
    /// The profile's values with every key the config sets on top.
    pub fn from_config(config: &RetryConfig) -> Self {
        let mut p = Self::profile(config.profile);
        let set = |v: Option<u64>, slot: &mut u64| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        if let Some(n) = config.same_upstream_attempts {
            p.same_upstream_attempts = n.clamp(1, 8);
        }
        set(config.backoff_ms, &mut p.backoff_ms);
        set(config.backoff_max_ms, &mut p.backoff_max_ms);
        set(config.jitter_ms, &mut p.jitter_ms);
        set(config.retry_after_max_ms, &mut p.retry_after_max_ms);
        set(config.cooldown_secs, &mut p.cooldown.base_secs);
        set(config.cooldown_max_secs, &mut p.cooldown.max_secs);
        if let Some(f) = config.cooldown_factor {
            p.cooldown.factor = f.clamp(1.0, 16.0);
        }
        set(
            config.cloudflare_challenge_cooldown_secs,
            &mut p.cloudflare_challenge_cooldown_secs,
        );
        set(config.first_event_timeout_ms, &mut p.first_event_timeout_ms);
        p
    }

    /// The values of a named profile.
    pub fn profile(profile: RetryProfile) -> Self {
        let balanced = Self {
            profile,
            same_upstream_attempts: 2,
            backoff_ms: 200,
            backoff_max_ms: 2_000,
            jitter_ms: 100,
            retry_after_max_ms: 5_000,
            cooldown: CooldownPolicy {
                base_secs: 30,
                factor: 2.0,
                max_secs: 600,
            },
            cloudflare_challenge_cooldown_secs: 300,
            cloudflare_timeout_cooldown_secs: None,
            first_event_timeout_ms: 45_000,
            rules: RetryRules::default(),
        };
        match profile {
            RetryProfile::Balanced => balanced,
            RetryProfile::SameUpstream => Self {
                same_upstream_attempts: 4,
                backoff_ms: 300,
                backoff_max_ms: 4_000,
                retry_after_max_ms: 15_000,
                ..balanced
            },
            RetryProfile::AggressiveFailover => Self {
                same_upstream_attempts: 1,
                retry_after_max_ms: 0,
                cooldown: CooldownPolicy {
                    base_secs: 15,
                    factor: 2.0,
                    max_secs: 300,
                },
                first_event_timeout_ms: 20_000,
                ..balanced
            },
            RetryProfile::CostPrimary => Self {
                same_upstream_attempts: 3,
                backoff_ms: 500,
                backoff_max_ms: 4_000,
                retry_after_max_ms: 15_000,
                cooldown: CooldownPolicy {
                    base_secs: 60,
                    factor: 2.0,
                    max_secs: 900,
                },
                ..balanced
            },
        }
    }

    /// What to do after attempt number `attempt` (1-based) on one endpoint failed with `failure`.
    /// `jitter` is a number in [0, 1) (random in production, fixed in tests).
    pub fn decide(&self, failure: &Failure, attempt: u32, jitter: f64) -> Action {
        if self.rules.never(failure) {
            return Action::Return;
        }
        let cooldown = self.cooldown_after(failure);
        if self.rules.retry_same(failure) {
            let wait_too_long = failure
                .retry_after_ms
                .is_some_and(|wait| wait > self.retry_after_max_ms);
            if attempt < self.same_upstream_attempts && !wait_too_long {
                let backoff = self
                    .backoff_ms
                    .saturating_mul(1 << (attempt.max(1) - 1).min(16))
                    .min(self.backoff_max_ms.max(self.backoff_ms));
                let delay = failure.retry_after_ms.unwrap_or(backoff);
                return Action::RetrySame {
                    delay_ms: delay + (self.jitter_ms as f64 * jitter.clamp(0.0, 1.0)) as u64,
                };
            }
        }
        if self.rules.fail_over(failure) {
            Action::Failover { cooldown }
        } else {
            Action::Return
        }
    }

    /// Whether `failure`'s reply may end up with the client as it is (so it must be kept).
    pub fn may_hand_back(&self, failure: &Failure) -> bool {
        failure.status.is_some() && (self.rules.never(failure) || !self.rules.fail_over(failure))
    }

    /// Whether `failure`'s reply goes to the client on the first try, without a retry.
    pub fn hands_back_at_once(&self, failure: &Failure) -> bool {
        failure.status.is_some()
            && (self.rules.never(failure)
                || (!self.rules.fail_over(failure) && !self.rules.retry_same(failure)))
    }

    /// How long the endpoint cools down when the request fails over from it.
    fn cooldown_after(&self, failure: &Failure) -> Cooldown {
        // A relay that says when it is ready again is believed: that is its cooldown, up to
        // the longest the user lets any cooldown grow (a relay could say a million years).
        let longest_ms = self.cooldown.max_secs.saturating_mul(1000);
        let told = failure
            .retry_after_ms
            .map_or(Cooldown::Growing, |ms| Cooldown::Fixed(ms.min(longest_ms)));
        match failure.class {
            FailureClass::UnsupportedModel | FailureClass::ImageGenerationMissingResult => {
                Cooldown::None
            }
            FailureClass::CloudflareChallenge => {
                Cooldown::Fixed(self.cloudflare_challenge_cooldown_secs.saturating_mul(1000))
            }
            FailureClass::CloudflareTimeout => self
                .cloudflare_timeout_cooldown_secs
                .map_or(told, |secs| Cooldown::Fixed(secs.saturating_mul(1000))),
            FailureClass::Auth
            | FailureClass::Redirect
            | FailureClass::ForwardingLoop
            | FailureClass::Connect
            | FailureClass::HeaderTimeout
            | FailureClass::FirstEventTimeout
            | FailureClass::PreambleTooLarge => Cooldown::Growing,
            FailureClass::RateLimited
            | FailureClass::ServerError
            | FailureClass::Transport
            | FailureClass::FailedInStream
            | FailureClass::EmptyStream
            | FailureClass::ClientError => told,
        }
    }
}

/// What went wrong in an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// No connection (refused, DNS, TLS).
    Connect,
    /// The connection broke before a response was complete enough to use.
    Transport,
    /// No response headers in time.
    HeaderTimeout,
    /// A streamed reply sent no real event in time.
    FirstEventTimeout,
    /// 429.
    RateLimited,
    /// 5xx (other than Cloudflare's 524).
    ServerError,
    /// 401 or 403: this relay refuses the credential.
    Auth,
    /// Cloudflare's 524 (origin timed out).
    CloudflareTimeout,
    /// A Cloudflare browser check page instead of an API answer.
    CloudflareChallenge,
    /// The relay does not serve this model: try another, the relay is not unhealthy.
    UnsupportedModel,
    /// The request itself is wrong: the client gets the answer as it is.
    ClientError,
    /// A 200 stream whose first event was `response.failed` or `error`.
    FailedInStream,
    /// A 200 stream that ended before any event.
    EmptyStream,
    /// 508 `forwarding_loop`: the relay leads back to this helper (a config mistake).
    ForwardingLoop,
    /// A 200 stream that sent more than the proxy holds (comments, blank lines, preamble
    /// events, one endless line) without a real event: a misbehaving relay, not worth waiting
    /// for.
    PreambleTooLarge,
    /// A 2xx to an Images request without a generated image (the original's class name):
    /// another relay may have the tool; this one is not unhealthy.
    ImageGenerationMissingResult,
    /// A redirect (301, 302, 303, 307, 308): never followed, since it would carry the
    /// relay's key or the request elsewhere, and never handed to the client, which would
    /// follow it with the conversation. Usually a wrong `base_url`.
    Redirect,
}

impl FailureClass {
    /// Every class, for tests and for migrations that rewrite stored names. New classes go at
    /// the end (see `affinity::legacy_classes`).
    pub const ALL: [FailureClass; 17] = [
        Self::Connect,
        Self::Transport,
        Self::HeaderTimeout,
        Self::FirstEventTimeout,
        Self::RateLimited,
        Self::ServerError,
        Self::Auth,
        Self::CloudflareTimeout,
        Self::CloudflareChallenge,
        Self::UnsupportedModel,
        Self::ClientError,
        Self::FailedInStream,
        Self::EmptyStream,
        Self::ForwardingLoop,
        Self::PreambleTooLarge,
        Self::ImageGenerationMissingResult,
        Self::Redirect,
    ];

    /// The stored and logged name: exactly the serde name. Use this, never `Debug`, wherever
    /// the class becomes data (ledger columns, affinity reasons, log fields).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Transport => "transport",
            Self::HeaderTimeout => "header_timeout",
            Self::FirstEventTimeout => "first_event_timeout",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Auth => "auth",
            Self::CloudflareTimeout => "cloudflare_timeout",
            Self::CloudflareChallenge => "cloudflare_challenge",
            Self::UnsupportedModel => "unsupported_model",
            Self::ClientError => "client_error",
            Self::FailedInStream => "failed_in_stream",
            Self::EmptyStream => "empty_stream",
            Self::ForwardingLoop => "forwarding_loop",
            Self::PreambleTooLarge => "preamble_too_large",
            Self::ImageGenerationMissingResult => "image_generation_missing_result",
            Self::Redirect => "redirect",
        }
    }

    /// The class named `name`, its serde name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// A classified failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// From `Retry-After`, when the relay sent one.
    pub retry_after_ms: Option<u64>,
    /// The reply's HTTP status, when there is a reply that could go to the client as it is
    /// (a non-2xx); `None` for a failure without one (connect error, broken stream).
    pub status: Option<u16>,
}

/// How long to cool an endpoint down after failing over from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cooldown {
    /// Health-neutral: no cooldown, no streak.
    None,
    /// The policy's growing cooldown.
    Growing,
    /// Exactly this long (ms).
    Fixed(u64),
}

/// What the failover loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Give the client this response as it is.
    Return,
    /// Try the same endpoint again after this long.
    RetrySame { delay_ms: u64 },
    /// Move on to the next candidate.
    Failover { cooldown: Cooldown },
}

/// Names a non-2xx response. `server` and `cf_ray` are the matching headers, `content_type`
/// the reply's, and `body` the start of its body.
pub fn classify_status(
    status: u16,
    server: Option<&str>,
    cf_ray: bool,
    content_type: &str,
    body: &str,
) -> FailureClass {
    let cloudflare =
        cf_ray || server.is_some_and(|s| s.to_ascii_lowercase().contains("cloudflare"));
    if content_type.contains("text/html")
        && [
            "__CF$cv$params",
            "/cdn-cgi/",
            "challenge-platform",
            "cf-chl-",
        ]
        .iter()
        .any(|m| body.contains(m))
    {
        return FailureClass::CloudflareChallenge;
    }
    match status {
        524 if cloudflare => FailureClass::CloudflareTimeout,
        // A helper (this one, through the relay, or another) refused a looping request.
        508 if body.contains("\"forwarding_loop\"") => FailureClass::ForwardingLoop,
        301 | 302 | 303 | 307 | 308 => FailureClass::Redirect,
        429 => FailureClass::RateLimited,
        500..=599 => FailureClass::ServerError,
        401 | 403 => FailureClass::Auth,
        400 | 404 | 409 | 422 if says_model_unsupported(body) => FailureClass::UnsupportedModel,
        _ => FailureClass::ClientError,
    }
}

/// Whether an error body says the model (or tier, or effort) is not available here.
fn says_model_unsupported(body: &str) -> bool {
    let text = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string())
        .to_ascii_lowercase();
    let subject = ["model", "service tier", "service_tier", "reasoning"]
        .iter()
        .any(|s| text.contains(s));
    let verdict = [
        "not supported",
        "unsupported",
        "not available",
        "unavailable",
        "does not exist",
        "not found",
        "no access",
        "do not have access",
        "not allowed",
    ]
    .iter()
    .any(|v| text.contains(v));
    subject && verdict
}

/// Reads `Retry-After` as seconds (HTTP dates are not used by relays in practice).
pub fn retry_after_ms(value: Option<&str>) -> Option<u64> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure of `class`, with a status typical of it when it comes with a reply.
    fn fail(class: FailureClass) -> Failure {
        let status = match class {
            FailureClass::RateLimited => Some(429),
            FailureClass::ServerError => Some(502),
            FailureClass::Auth => Some(401),
            FailureClass::CloudflareTimeout => Some(524),
            FailureClass::CloudflareChallenge => Some(403),
            FailureClass::UnsupportedModel | FailureClass::ClientError => Some(400),
            FailureClass::ForwardingLoop => Some(508),
            _ => None,
        };
        Failure {
            class,
            retry_after_ms: None,
            status,
        }
    }

    #[test]
    fn every_class_keeps_its_built_in_decision() {
        // Without the original's lists, each class is decided as before they existed.
        let p = RetryPolicy::profile(RetryProfile::Balanced);
        let retried = [
            FailureClass::RateLimited,
            FailureClass::ServerError,
            FailureClass::CloudflareTimeout,
            FailureClass::Transport,
            FailureClass::FailedInStream,
            FailureClass::EmptyStream,
        ];
        for class in FailureClass::ALL {
            let first = p.decide(&fail(class), 1, 0.0);
            let last = p.decide(&fail(class), 2, 0.0);
            if class == FailureClass::ClientError {
                assert_eq!((first, last), (Action::Return, Action::Return));
                assert!(p.hands_back_at_once(&fail(class)));
            } else if retried.contains(&class) {
                assert!(matches!(first, Action::RetrySame { .. }), "{class:?}");
                assert!(matches!(last, Action::Failover { .. }), "{class:?}");
            } else {
                assert_eq!(first, last, "{class:?}");
                assert!(matches!(first, Action::Failover { .. }), "{class:?}");
                assert!(!p.may_hand_back(&fail(class)), "{class:?}");
            }
        }
    }

    #[test]
    fn names_are_the_serde_names() {
        for class in FailureClass::ALL {
            let serde = serde_json::to_value(class).unwrap();
            assert_eq!(serde.as_str(), Some(class.as_str()), "{class:?}");
            assert_eq!(FailureClass::from_name(class.as_str()), Some(class));
        }
    }

    #[test]
    fn profiles_and_overrides() {
        let p = RetryPolicy::from_config(&RetryConfig {
            profile: RetryProfile::AggressiveFailover,
            cooldown_secs: Some(7),
            ..Default::default()
        });
        assert_eq!(p.same_upstream_attempts, 1);
        assert_eq!(p.cooldown.base_secs, 7);
        let p = RetryPolicy::from_config(&RetryConfig {
            same_upstream_attempts: Some(99),
            cooldown_factor: Some(0.1),
            ..Default::default()
        });
        assert_eq!((p.same_upstream_attempts, p.cooldown.factor), (8, 1.0));
    }

    #[test]
    fn server_errors_retry_the_same_endpoint_then_fail_over() {
        let p = RetryPolicy::profile(RetryProfile::Balanced);
        assert_eq!(
            p.decide(&fail(FailureClass::ServerError), 1, 0.0),
            Action::RetrySame { delay_ms: 200 }
        );
        assert_eq!(
            p.decide(&fail(FailureClass::ServerError), 1, 0.5),
            Action::RetrySame { delay_ms: 250 }
        );
        assert_eq!(
            p.decide(&fail(FailureClass::ServerError), 2, 0.0),
            Action::Failover {
                cooldown: Cooldown::Growing
            }
        );
        let same = RetryPolicy::profile(RetryProfile::SameUpstream);
        assert_eq!(
            same.decide(&fail(FailureClass::ServerError), 3, 0.0),
            Action::RetrySame { delay_ms: 1200 }
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::profile(RetryProfile::Balanced);
        let short = Failure {
            class: FailureClass::RateLimited,
            retry_after_ms: Some(1_000),
            status: Some(429),
        };
        assert_eq!(
            p.decide(&short, 1, 0.0),
            Action::RetrySame { delay_ms: 1_000 }
        );
        let long = Failure {
            class: FailureClass::RateLimited,
            retry_after_ms: Some(60_000),
            status: Some(429),
        };
        assert_eq!(
            p.decide(&long, 1, 0.0),
            Action::Failover {
                cooldown: Cooldown::Fixed(60_000)
            }
        );
        assert_eq!(
            p.decide(&short, 2, 0.0),
            Action::Failover {
                cooldown: Cooldown::Fixed(1_000)
            },
            "out of tries: cool down as long as the relay said"
        );
        assert_eq!(retry_after_ms(Some(" 2 ")), Some(2_000));
        // A relay's word is capped at the longest cooldown the user allows.
        for absurd in ["1e15", "1e17", "1e300"] {
            let told = Failure {
                retry_after_ms: retry_after_ms(Some(absurd)),
                ..long.clone()
            };
            assert_eq!(
                p.decide(&told, 2, 0.0),
                Action::Failover {
                    cooldown: Cooldown::Fixed(p.cooldown.max_secs * 1000)
                },
                "{absurd}"
            );
        }
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn client_errors_return_and_connect_errors_fail_over_at_once() {
        let p = RetryPolicy::profile(RetryProfile::CostPrimary);
        assert_eq!(
            p.decide(&fail(FailureClass::ClientError), 1, 0.0),
            Action::Return
        );
        assert_eq!(
            p.decide(&fail(FailureClass::Connect), 1, 0.0),
            Action::Failover {
                cooldown: Cooldown::Growing
            }
        );
        assert_eq!(
            p.decide(&fail(FailureClass::UnsupportedModel), 1, 0.0),
            Action::Failover {
                cooldown: Cooldown::None
            }
        );
        assert_eq!(
            p.decide(&fail(FailureClass::CloudflareChallenge), 1, 0.0),
            Action::Failover {
                cooldown: Cooldown::Fixed(300_000)
            }
        );
    }

    #[test]
    fn redirects_are_their_own_class_and_not_modified_is_not_one() {
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(
                classify_status(status, None, false, "", ""),
                FailureClass::Redirect
            );
        }
        assert_eq!(
            classify_status(304, None, false, "", ""),
            FailureClass::ClientError
        );
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify_status(429, None, false, "application/json", "{}"),
            FailureClass::RateLimited
        );
        assert_eq!(
            classify_status(502, None, false, "", ""),
            FailureClass::ServerError
        );
        assert_eq!(
            classify_status(524, Some("cloudflare"), false, "", ""),
            FailureClass::CloudflareTimeout
        );
        assert_eq!(
            classify_status(524, None, false, "", ""),
            FailureClass::ServerError
        );
        assert_eq!(
            classify_status(
                403,
                None,
                true,
                "text/html",
                "<script src=\"/cdn-cgi/challenge-platform/x\">"
            ),
            FailureClass::CloudflareChallenge
        );
        assert_eq!(
            classify_status(401, None, false, "", ""),
            FailureClass::Auth
        );
        assert_eq!(
            classify_status(
                400,
                None,
                false,
                "application/json",
                r#"{"error":{"message":"The model `gpt-9` does not exist"}}"#
            ),
            FailureClass::UnsupportedModel
        );
        assert_eq!(
            classify_status(
                404,
                None,
                false,
                "text/plain",
                "model not supported on this channel"
            ),
            FailureClass::UnsupportedModel
        );
        assert_eq!(
            classify_status(
                400,
                None,
                false,
                "application/json",
                r#"{"error":{"message":"input too long","type":"invalid_request_error"}}"#
            ),
            FailureClass::ClientError
        );
        for status in [413, 415, 422] {
            assert_eq!(
                classify_status(status, None, false, "", "payload"),
                FailureClass::ClientError
            );
        }
    }
}
