//! The original codex-helper's retry lists, given the same meaning here.
//!
//! A failed attempt is matched against three lists of statuses and failure classes, in the
//! original's order:
//! 1. `never_on_class`, or `never_on_status` (unless a layer's `on_class` names the class):
//!    the relay's reply goes to the client as it is;
//! 2. `[retry.upstream]` `on_status` / `on_class`: try the same endpoint again while
//!    `max_attempts` allows;
//! 3. `[retry.provider]` `on_status` / `on_class`: fail over to the next candidate;
//! 4. anything else: the reply goes to the client as it is.
//!
//! A status list that is set applies to every reply with that status (as in the original);
//! class lists name the failure's class, in either vocabulary. A failure with no reply to
//! hand back (connect error, broken stream) always fails over in the end. A list that is not
//! set keeps this helper's own behaviour for it, so a config without these keys behaves
//! exactly as before: its default status lists only cover the failures known by their
//! status alone (429, 5xx, 401/403, 524, other 4xx), and replies recognised by their content
//! (a Cloudflare challenge page, an unsupported model, a forwarding loop) follow the default
//! class lists.

use std::path::Path;

use crate::config::ConfigError;
use crate::config::model::RetryConfig;
use crate::config::v5_retry::StatusList;

use super::{Failure, FailureClass, RetryPolicy};

/// Classes decided by the HTTP status alone: the ones status lists apply to.
const STATUS_CLASSES: [FailureClass; 5] = [
    FailureClass::RateLimited,
    FailureClass::ServerError,
    FailureClass::Auth,
    FailureClass::CloudflareTimeout,
    FailureClass::ClientError,
];

/// What a class name in a list stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassMatch {
    /// This helper's class.
    Is(FailureClass),
    /// The original's `client_error_non_retryable`: a client error that will fail the same
    /// way anywhere (a 400, 409, 413, 415 or 422 that is not about the model).
    ClientErrorNonRetryable,
}

impl ClassMatch {
    pub fn matches(self, f: &Failure) -> bool {
        match self {
            Self::Is(class) => f.class == class,
            Self::ClientErrorNonRetryable => {
                f.class == FailureClass::ClientError
                    && f.status
                        .is_some_and(|s| matches!(s, 400 | 409 | 413 | 415 | 422))
            }
        }
    }
}

type ClassList = Vec<ClassMatch>;

/// The resolved lists; `None` keeps the built-in behaviour for that list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryRules {
    pub upstream_on_status: Option<StatusList>,
    pub upstream_on_class: Option<ClassList>,
    pub provider_on_status: Option<StatusList>,
    pub provider_on_class: Option<ClassList>,
    pub never_on_status: Option<StatusList>,
    pub never_on_class: Option<ClassList>,
}

impl RetryRules {
    /// Statuses retried on the same endpoint when `upstream.on_status` is not set.
    pub fn default_upstream_status() -> StatusList {
        StatusList::parse("429,500-599").expect("valid")
    }

    /// Classes retried on the same endpoint when `upstream.on_class` is not set.
    pub fn default_upstream_classes() -> ClassList {
        [
            FailureClass::Transport,
            FailureClass::FailedInStream,
            FailureClass::EmptyStream,
        ]
        .map(ClassMatch::Is)
        .to_vec()
    }

    /// Statuses that fail over when `provider.on_status` is not set.
    pub fn default_provider_status() -> StatusList {
        StatusList::parse("401,403,429,500-599").expect("valid")
    }

    /// Classes that fail over when `provider.on_class` is not set: every class that is not
    /// decided by the status alone.
    pub fn default_provider_classes() -> ClassList {
        FailureClass::ALL
            .into_iter()
            .filter(|c| !STATUS_CLASSES.contains(c))
            .map(ClassMatch::Is)
            .collect()
    }

    fn status_in(list: Option<&StatusList>, default: fn() -> StatusList, f: &Failure) -> bool {
        let Some(status) = f.status else {
            return false;
        };
        match list {
            Some(list) => list.contains(status),
            None => STATUS_CLASSES.contains(&f.class) && default().contains(status),
        }
    }

    fn class_in(list: Option<&ClassList>, default: fn() -> ClassList, f: &Failure) -> bool {
        match list {
            Some(list) => list.iter().any(|m| m.matches(f)),
            None => default().iter().any(|m| m.matches(f)),
        }
    }

    /// Step 1: hand the reply back as it is, whatever the layers say.
    pub fn never(&self, f: &Failure) -> bool {
        let Some(status) = f.status else {
            return false; // Nothing to hand back.
        };
        if f.class == FailureClass::Redirect {
            return false; // Never handed back, whatever the lists say (the client follows).
        }
        if self
            .never_on_class
            .as_ref()
            .is_some_and(|l| l.iter().any(|m| m.matches(f)))
        {
            return true;
        }
        let named = Self::class_in(
            self.upstream_on_class.as_ref(),
            Self::default_upstream_classes,
            f,
        ) || Self::class_in(
            self.provider_on_class.as_ref(),
            Self::default_provider_classes,
            f,
        );
        self.never_on_status
            .as_ref()
            .is_some_and(|l| l.contains(status))
            && !named
    }

    /// Step 2: this failure is worth another try on the same endpoint.
    pub fn retry_same(&self, f: &Failure) -> bool {
        Self::status_in(
            self.upstream_on_status.as_ref(),
            Self::default_upstream_status,
            f,
        ) || Self::class_in(
            self.upstream_on_class.as_ref(),
            Self::default_upstream_classes,
            f,
        )
    }

    /// Step 3: this failure moves on to the next candidate (always, when there is no reply
    /// to hand back).
    pub fn fail_over(&self, f: &Failure) -> bool {
        f.status.is_none()
            || f.class == FailureClass::Redirect
            || Self::status_in(
                self.provider_on_status.as_ref(),
                Self::default_provider_status,
                f,
            )
            || Self::class_in(
                self.provider_on_class.as_ref(),
                Self::default_provider_classes,
                f,
            )
    }
}

/// What a configured class name stands for: this helper's names, and the original's
/// (`upstream_transport_error` is any failure to get a reply: connect, transport, header
/// timeout).
pub fn classes_named(name: &str) -> Option<ClassList> {
    use FailureClass::*;
    let original = match name {
        "upstream_transport_error" => [Connect, Transport, HeaderTimeout]
            .map(ClassMatch::Is)
            .to_vec(),
        "routing_mismatch_capability" => vec![ClassMatch::Is(UnsupportedModel)],
        "client_error_non_retryable" => vec![ClassMatch::ClientErrorNonRetryable],
        _ => return FailureClass::from_name(name).map(|c| vec![ClassMatch::Is(c)]),
    };
    Some(original)
}

/// Every name [`classes_named`] accepts (the config's list, which the schema offers).
pub fn class_names() -> &'static [&'static str] {
    &crate::config::v5_retry::CLASS_NAMES
}

fn classes(
    path: &Path,
    key: &str,
    names: &Option<Vec<String>>,
) -> Result<Option<ClassList>, ConfigError> {
    let Some(names) = names else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in names {
        let found = classes_named(name.trim()).ok_or_else(|| {
            ConfigError::new(
                path,
                key,
                format!(
                    "unknown failure class `{name}`; allowed: {}",
                    class_names().join(", ")
                ),
            )
        })?;
        for class in found {
            if !out.contains(&class) {
                out.push(class);
            }
        }
    }
    Ok(Some(out))
}

/// One value set under two names (this helper's and the original's): the same value is
/// fine, two different ones are a mistake to point at.
fn either<T: PartialEq + Copy + std::fmt::Display>(
    path: &Path,
    ours: (&str, Option<T>),
    theirs: (&str, Option<T>),
) -> Result<Option<T>, ConfigError> {
    match (ours.1, theirs.1) {
        (Some(a), Some(b)) if a != b => Err(ConfigError::new(
            path,
            format!("retry.{}", theirs.0),
            format!(
                "{b} disagrees with `retry.{}` = {a}; both set the same thing, keep one",
                ours.0
            ),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

impl RetryPolicy {
    /// `[retry]` as the proxy applies it: the profile, this helper's keys and the original's
    /// v5 keys (which mean the same), with class names checked. `path` is for messages.
    pub fn resolve(config: &RetryConfig, path: &Path) -> Result<Self, ConfigError> {
        let upstream = config.upstream.clone().unwrap_or_default();
        let provider = config.provider.clone().unwrap_or_default();
        let merged = RetryConfig {
            same_upstream_attempts: either(
                path,
                ("same_upstream_attempts", config.same_upstream_attempts),
                ("upstream.max_attempts", upstream.max_attempts),
            )?,
            backoff_ms: either(
                path,
                ("backoff_ms", config.backoff_ms),
                ("upstream.backoff_ms", upstream.backoff_ms),
            )?,
            backoff_max_ms: either(
                path,
                ("backoff_max_ms", config.backoff_max_ms),
                ("upstream.backoff_max_ms", upstream.backoff_max_ms),
            )?,
            jitter_ms: either(
                path,
                ("jitter_ms", config.jitter_ms),
                ("upstream.jitter_ms", upstream.jitter_ms),
            )?,
            cooldown_secs: either(
                path,
                ("cooldown_secs", config.cooldown_secs),
                ("transport_cooldown_secs", config.transport_cooldown_secs),
            )?,
            cooldown_factor: either(
                path,
                ("cooldown_factor", config.cooldown_factor),
                ("cooldown_backoff_factor", config.cooldown_backoff_factor),
            )?,
            cooldown_max_secs: either(
                path,
                ("cooldown_max_secs", config.cooldown_max_secs),
                (
                    "cooldown_backoff_max_secs",
                    config.cooldown_backoff_max_secs,
                ),
            )?
            .map(|secs| secs.min(86_400)),
            ..config.clone()
        };
        let mut policy = Self::from_config(&merged);
        policy.cloudflare_timeout_cooldown_secs = config.cloudflare_timeout_cooldown_secs;
        policy.rules = RetryRules {
            upstream_on_status: upstream.on_status,
            upstream_on_class: classes(path, "retry.upstream.on_class", &upstream.on_class)?,
            provider_on_status: provider.on_status,
            provider_on_class: classes(path, "retry.provider.on_class", &provider.on_class)?,
            never_on_status: config.never_on_status.clone(),
            never_on_class: classes(path, "retry.never_on_class", &config.never_on_class)?,
        };
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::retry::{Action, Cooldown};

    fn policy(text: &str) -> Result<RetryPolicy, ConfigError> {
        let config: RetryConfig = toml::from_str(text).unwrap();
        RetryPolicy::resolve(&config, Path::new("/c.toml"))
    }

    fn status(code: u16, class: FailureClass) -> Failure {
        Failure {
            class,
            retry_after_ms: None,
            status: Some(code),
        }
    }

    #[test]
    fn the_configs_class_names_are_exactly_the_known_ones() {
        for name in class_names() {
            assert!(classes_named(name).is_some(), "{name}");
        }
        for class in FailureClass::ALL {
            assert!(class_names().contains(&class.as_str()), "{class:?}");
        }
        assert_eq!(class_names().len(), FailureClass::ALL.len() + 3);
    }

    #[test]
    fn without_v5_keys_nothing_changes() {
        let plain = policy("").unwrap();
        assert_eq!(plain, RetryPolicy::profile(Default::default()));
        assert_eq!(plain.rules, RetryRules::default());
    }

    #[test]
    fn the_original_names_set_the_same_values() {
        let p = policy(
            "transport_cooldown_secs = 12\ncooldown_backoff_factor = 3\ncooldown_backoff_max_secs = 99999\n\
             [upstream]\nmax_attempts = 4\nbackoff_ms = 10\nbackoff_max_ms = 20\njitter_ms = 5\n",
        )
        .unwrap();
        assert_eq!(p.same_upstream_attempts, 4);
        assert_eq!((p.backoff_ms, p.backoff_max_ms, p.jitter_ms), (10, 20, 5));
        assert_eq!(p.cooldown.base_secs, 12);
        assert_eq!(p.cooldown.factor, 3.0);
        assert_eq!(p.cooldown.max_secs, 86_400, "clamped as the original does");
        // Same value under both names: fine. Different: named.
        assert!(policy("cooldown_secs = 5\ntransport_cooldown_secs = 5\n").is_ok());
        let e = policy("jitter_ms = 5\n[upstream]\njitter_ms = 6\n").unwrap_err();
        assert_eq!(e.key, "retry.upstream.jitter_ms");
        assert!(e.message.contains("`retry.jitter_ms` = 5"), "{}", e.message);
    }

    #[test]
    fn status_lists_decide_retry_failover_and_hand_back() {
        let p = policy(
            "never_on_status = \"413,415,422\"\n\
             [upstream]\nmax_attempts = 2\non_status = \"429\"\n\
             [provider]\non_status = [401, 403, 404, 408, 429, \"500-599\"]\n",
        )
        .unwrap();
        // 429: retried on the same endpoint, then failed over.
        let limited = status(429, FailureClass::RateLimited);
        assert!(matches!(
            p.decide(&limited, 1, 0.0),
            Action::RetrySame { .. }
        ));
        assert!(matches!(
            p.decide(&limited, 2, 0.0),
            Action::Failover { .. }
        ));
        // 502 is no longer in the upstream list: straight to the next candidate.
        assert!(matches!(
            p.decide(&status(502, FailureClass::ServerError), 1, 0.0),
            Action::Failover { .. }
        ));
        // 404 fails over (the original's default), a penalised endpoint.
        assert_eq!(
            p.decide(&status(404, FailureClass::ClientError), 1, 0.0),
            Action::Failover {
                cooldown: Cooldown::Growing
            }
        );
        assert!(p.may_hand_back(&status(413, FailureClass::ClientError)));
        assert_eq!(
            p.decide(&status(413, FailureClass::ClientError), 1, 0.0),
            Action::Return
        );
        // 400 is in no list: handed back.
        assert_eq!(
            p.decide(&status(400, FailureClass::ClientError), 1, 0.0),
            Action::Return
        );
    }

    #[test]
    fn a_redirect_fails_over_whatever_the_lists_say() {
        // Handed back, the client would follow it with the request to another host.
        let redirect = status(307, FailureClass::Redirect);
        for text in [
            "",
            "never_on_status = \"307\"\n",
            "never_on_class = [\"redirect\"]\n",
            "[provider]\non_status = \"500\"\non_class = [\"transport\"]\n",
        ] {
            let p = policy(text).unwrap();
            assert_eq!(
                p.decide(&redirect, 1, 0.0),
                Action::Failover {
                    cooldown: Cooldown::Growing
                },
                "{text}"
            );
            assert!(!p.may_hand_back(&redirect), "{text}");
        }
    }

    #[test]
    fn provider_list_without_5xx_hands_5xx_back_after_retries() {
        let p = policy("[provider]\non_status = \"401,403\"\n").unwrap();
        let e500 = status(500, FailureClass::ServerError);
        assert!(matches!(p.decide(&e500, 1, 0.0), Action::RetrySame { .. }));
        assert_eq!(p.decide(&e500, 2, 0.0), Action::Return);
        assert!(p.may_hand_back(&e500));
        // A connect error has nothing to hand back: it fails over whatever the lists say.
        let connect = Failure {
            class: FailureClass::Connect,
            retry_after_ms: None,
            status: None,
        };
        assert!(matches!(
            p.decide(&connect, 1, 0.0),
            Action::Failover { .. }
        ));
    }

    #[test]
    fn class_lists_take_both_vocabularies() {
        let p = policy(
            "never_on_class = [\"client_error_non_retryable\"]\nnever_on_status = \"524\"\n\
             [upstream]\non_class = [\"upstream_transport_error\", \"cloudflare_challenge\"]\n\
             [provider]\non_class = [\"routing_mismatch_capability\", \"cloudflare_timeout\"]\n",
        )
        .unwrap();
        assert_eq!(
            p.rules.upstream_on_class,
            Some(
                [
                    FailureClass::Connect,
                    FailureClass::Transport,
                    FailureClass::HeaderTimeout,
                    FailureClass::CloudflareChallenge
                ]
                .map(ClassMatch::Is)
                .to_vec()
            )
        );
        let connect = Failure {
            class: FailureClass::Connect,
            retry_after_ms: None,
            status: None,
        };
        assert!(matches!(
            p.decide(&connect, 1, 0.0),
            Action::RetrySame { .. }
        ));
        // 524 is in never_on_status, but the provider layer names cloudflare_timeout.
        assert!(matches!(
            p.decide(&status(524, FailureClass::CloudflareTimeout), 3, 0.0),
            Action::Failover { .. }
        ));
        assert_eq!(
            p.decide(&status(400, FailureClass::ClientError), 1, 0.0),
            Action::Return
        );
        let e = policy("[provider]\non_class = [\"teapot\"]\n").unwrap_err();
        assert_eq!(e.key, "retry.provider.on_class");
        assert!(
            e.message.contains("upstream_transport_error"),
            "{}",
            e.message
        );
    }

    #[test]
    fn cloudflare_timeout_cooldown_is_applied() {
        let p = policy("cloudflare_timeout_cooldown_secs = 45\n").unwrap();
        assert_eq!(
            p.decide(&status(524, FailureClass::CloudflareTimeout), 2, 0.0),
            Action::Failover {
                cooldown: Cooldown::Fixed(45_000)
            }
        );
    }
}
