//! From probe results to presets (pure): what each preset needs from a relay, whether the
//! relay has it, and which preset to recommend. Nothing here switches anything.
//!
//! Needs are those of the pinned Codex (0.171): every preset speaks `/responses`; the official
//! presets make Codex compact remotely, which is v2 (`compaction_trigger` on `/responses`)
//! unless `--compaction` says otherwise; the imagegen presets need the hosted
//! `image_generation` tool. The WebSocket transport is never a need: when a relay refuses it,
//! the proxy tells Codex at once and Codex uses HTTP.

use serde::{Deserialize, Serialize};

use super::probe::{Basis, Probe, ProbeResult, Support};
use crate::codex::preset::{Compaction, Preset};

/// Whether a preset can be used with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    Works,
    Fails,
    /// Something it needs could not be checked (or was not probed).
    Unproven,
}

/// One preset against the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresetFit {
    pub preset: Preset,
    pub fit: Fit,
    /// What it needs of the relay.
    pub needs: Vec<Probe>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

/// The preset to use, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// `None` when no preset can work with the relay.
    pub preset: Option<Preset>,
    pub confidence: Confidence,
    /// The preset in force, when there is one.
    pub current: Option<Preset>,
    /// Whether following the recommendation changes the preset in force.
    pub changes_current: bool,
    pub reasons: Vec<String>,
}

/// Best first: the most Codex features that the relay can carry.
const PREFERENCE: [Preset; 4] = [
    Preset::OfficialImagegen,
    Preset::OfficialRelay,
    Preset::ImagegenBridge,
    Preset::Default,
];

/// What `preset` (with `compaction`) needs from a relay.
pub fn needs(preset: Preset, compaction: Compaction) -> Vec<Probe> {
    let mut needs = vec![Probe::Responses];
    // Only a provider named OpenAI compacts remotely; the others always compact locally.
    let remote = match compaction {
        _ if !preset.is_official() => None,
        Compaction::Auto | Compaction::RemoteV2 => Some(Probe::CompactV2),
        Compaction::Local => None,
        Compaction::RemoteV1 => Some(Probe::CompactV1),
    };
    needs.extend(remote);
    if matches!(preset, Preset::ImagegenBridge | Preset::OfficialImagegen) {
        needs.push(Probe::ImageGeneration);
    }
    needs
}

/// How `preset` fares against `results`.
pub fn fit(preset: Preset, compaction: Compaction, results: &[ProbeResult]) -> PresetFit {
    let needs = needs(preset, compaction);
    let mut fails = Vec::new();
    let mut unproven = Vec::new();
    for need in &needs {
        let what = need_name(*need);
        match results.iter().find(|r| r.probe == *need) {
            None => unproven.push(format!(
                "needs {what}, which was not probed{}",
                if *need == Probe::ImageGeneration {
                    " (add --image)"
                } else {
                    ""
                }
            )),
            Some(r) => match r.support {
                Support::Supported => {}
                Support::Unsupported | Support::AuthFailed => {
                    fails.push(format!("needs {what}: {}", r.reason))
                }
                Support::Error => unproven.push(format!(
                    "needs {what}, which could not be checked: {}",
                    r.reason
                )),
            },
        }
    }
    // Codex offers image generation only with a model that takes images.
    let imagegen = matches!(preset, Preset::ImagegenBridge | Preset::OfficialImagegen);
    let text_only = results
        .iter()
        .filter_map(|r| r.catalog.as_ref())
        .any(|c| c.model_takes_images == Some(false));
    if imagegen && text_only {
        fails.push(
            "the model asked about takes no image input, so Codex offers no image generation with it"
                .into(),
        );
    }
    let fit = if !fails.is_empty() {
        Fit::Fails
    } else if !unproven.is_empty() {
        Fit::Unproven
    } else {
        Fit::Works
    };
    let mut reasons = fails;
    reasons.extend(unproven);
    if preset == Preset::ChatgptBridge {
        reasons.push("also needs Codex signed in with ChatGPT (not a relay matter)".into());
    }
    PresetFit {
        preset,
        fit,
        needs,
        reasons,
    }
}

/// Every preset against `results`, in [`Preset::ALL`] order.
pub fn fits(compaction: Compaction, results: &[ProbeResult]) -> Vec<PresetFit> {
    Preset::ALL
        .iter()
        .map(|p| fit(*p, compaction, results))
        .collect()
}

/// The preset to recommend from `fits`: the first of [`PREFERENCE`] that works.
pub fn recommend(
    fits: &[PresetFit],
    results: &[ProbeResult],
    current: Option<Preset>,
) -> Recommendation {
    let of = |preset: Preset| fits.iter().find(|f| f.preset == preset);
    let chosen = PREFERENCE
        .iter()
        .find(|p| of(**p).is_some_and(|f| f.fit == Fit::Works))
        .copied();
    let mut reasons = Vec::new();
    let Some(preset) = chosen else {
        reasons.push(blocker(results));
        // An outage may pass: "no preset" is sure only when the relay said so.
        let sure = results
            .iter()
            .find(|r| r.probe == Probe::Responses)
            .is_some_and(|r| r.support != Support::Error);
        return Recommendation {
            preset: None,
            confidence: if sure {
                Confidence::High
            } else {
                Confidence::Low
            },
            current,
            changes_current: false,
            reasons,
        };
    };
    let chosen_fit = of(preset).expect("a recommended preset was evaluated");
    // Only validated (not exercised) features: a live smoke proves them.
    let validated: Vec<&str> = chosen_fit
        .needs
        .iter()
        .filter(|n| **n != Probe::Responses)
        .filter(|n| {
            results
                .iter()
                .any(|r| r.probe == **n && r.basis == Basis::Validated)
        })
        .map(|n| need_name(*n))
        .collect();
    // A better preset that could not be checked may be the right one.
    let better_unproven: Vec<Preset> = PREFERENCE
        .iter()
        .take_while(|p| **p != preset)
        .filter(|p| of(**p).is_some_and(|f| f.fit == Fit::Unproven))
        .copied()
        .collect();
    reasons.push(match preset {
        Preset::OfficialImagegen => {
            "the relay takes remote compaction and hosted image generation".to_string()
        }
        Preset::OfficialRelay => "the relay takes remote compaction".to_string(),
        Preset::ImagegenBridge => "the relay takes hosted image generation".to_string(),
        _ => "the relay speaks the Responses API".to_string(),
    });
    // A better preset left unproven by a check that failed (not one never asked for).
    let errored = better_unproven.iter().any(|p| {
        of(*p).is_some_and(|f| {
            f.needs.iter().any(|n| {
                results
                    .iter()
                    .any(|r| r.probe == *n && r.support == Support::Error)
            })
        })
    });
    let confidence = if errored {
        Confidence::Low
    } else if !validated.is_empty() {
        Confidence::Medium
    } else {
        Confidence::High
    };
    for better in &better_unproven {
        let why = of(*better)
            .and_then(|f| f.reasons.first().cloned())
            .unwrap_or_default();
        reasons.push(format!("{better} might work too: it {why}"));
    }
    if !validated.is_empty() {
        reasons.push(format!(
            "{} only validated, not exercised: `codex-helper codex relay-live-smoke` proves it",
            validated.join(" and ")
        ));
    }
    if let Some(ws) = results.iter().find(|r| r.probe == Probe::Websocket)
        && ws.support == Support::Supported
        && preset.is_official()
    {
        reasons.push(
            "the relay accepts the Responses WebSocket: `switch on --responses-websocket` may use it"
                .into(),
        );
    }
    Recommendation {
        preset: Some(preset),
        confidence,
        current,
        changes_current: current.is_some_and(|c| c != preset),
        reasons,
    }
}

/// Why no preset works: the most basic problem found.
fn blocker(results: &[ProbeResult]) -> String {
    let of = |probe| results.iter().find(|r| r.probe == probe);
    let Some(responses) = of(Probe::Responses) else {
        return "the Responses API was not probed".into();
    };
    match responses.support {
        Support::AuthFailed => format!(
            "the relay refused the key ({}): no preset works until the provider's key is fixed",
            responses.reason
        ),
        Support::Unsupported
            if of(Probe::ChatCompletions).is_some_and(|c| c.support == Support::Supported) =>
        {
            "the relay speaks only Chat Completions: Codex cannot use it, because Codex speaks \
             only the Responses API (`/responses`), which this relay does not have"
                .into()
        }
        Support::Unsupported => format!(
            "the relay has no Responses API ({}): Codex cannot use it (is base_url right?)",
            responses.reason
        ),
        Support::Error => format!(
            "the Responses API could not be checked ({}): try again, or check base_url",
            responses.reason
        ),
        Support::Supported => "no preset's needs were all met".into(),
    }
}

/// One line for an endpoint: the recommendation, or why there is none.
pub fn verdict(recommendation: &Recommendation, fits: &[PresetFit]) -> String {
    let Some(preset) = recommendation.preset else {
        return format!(
            "no preset: {}",
            recommendation.reasons.first().cloned().unwrap_or_default()
        );
    };
    let listed = |fit: Fit| {
        let names: Vec<&str> = fits
            .iter()
            .filter(|f| f.fit == fit)
            .map(|f| f.preset.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let confidence = match recommendation.confidence {
        Confidence::High => "high",
        Confidence::Medium => "medium",
        Confidence::Low => "low",
    };
    format!(
        "use {preset} ({confidence} confidence); works: {}; fails: {}",
        listed(Fit::Works),
        listed(Fit::Fails)
    )
}

/// A need, in words.
fn need_name(probe: Probe) -> &'static str {
    match probe {
        Probe::Responses => "the Responses API",
        Probe::CompactV1 => "remote compaction v1 (/responses/compact)",
        Probe::CompactV2 => "remote compaction v2 (compaction_trigger)",
        Probe::ImageGeneration => "hosted image generation",
        Probe::Websocket => "the Responses WebSocket",
        Probe::Models => "a model list",
        Probe::ChatCompletions => "Chat Completions",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::exchange::Sent;

    fn result(probe: Probe, support: Support, basis: Basis) -> ProbeResult {
        ProbeResult {
            probe,
            support,
            basis,
            status: Some(400),
            ms: 1,
            reason: format!("{} said so", probe.as_str()),
            sent: Sent {
                method: "POST".into(),
                path: "/v1/responses".into(),
                shape: "test".into(),
            },
            catalog: None,
        }
    }

    fn observed(rows: &[(Probe, Support, Basis)]) -> Vec<ProbeResult> {
        rows.iter().map(|(p, s, b)| result(*p, *s, *b)).collect()
    }

    fn recommended(results: &[ProbeResult], compaction: Compaction) -> Recommendation {
        recommend(&fits(compaction, results), results, Some(Preset::Default))
    }

    use Basis::*;
    use Probe::*;
    use Support::*;

    #[test]
    fn a_relay_with_everything_gets_official_imagegen() {
        let results = observed(&[
            (Responses, Supported, Validated),
            (CompactV1, Supported, Validated),
            (CompactV2, Supported, Validated),
            (ImageGeneration, Supported, Validated),
            (Websocket, Supported, Answered),
        ]);
        let r = recommended(&results, Compaction::Auto);
        assert_eq!(r.preset, Some(Preset::OfficialImagegen));
        assert_eq!(r.confidence, Confidence::Medium, "{r:?}");
        assert!(r.changes_current);
        assert!(r.reasons.iter().any(|x| x.contains("relay-live-smoke")));
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("--responses-websocket"))
        );
    }

    #[test]
    fn without_v2_the_official_presets_fail_and_default_is_left() {
        let results = observed(&[
            (Responses, Supported, Validated),
            (CompactV1, Unsupported, Refused),
            (CompactV2, Unsupported, Refused),
            (Websocket, Unsupported, Refused),
        ]);
        let all = fits(Compaction::Auto, &results);
        let fit_of = |p| all.iter().find(|f| f.preset == p).unwrap().fit;
        assert_eq!(fit_of(Preset::OfficialRelay), Fit::Fails);
        assert_eq!(fit_of(Preset::OfficialImagegen), Fit::Fails);
        assert_eq!(
            fit_of(Preset::ImagegenBridge),
            Fit::Unproven,
            "image not probed"
        );
        assert_eq!(fit_of(Preset::Default), Fit::Works);
        let r = recommend(&all, &results, Some(Preset::Default));
        assert_eq!(r.preset, Some(Preset::Default));
        assert_eq!(r.confidence, Confidence::High);
        assert!(!r.changes_current);
        let line = verdict(&r, &all);
        assert!(line.starts_with("use default (high confidence)"), "{line}");
        assert!(
            line.contains("fails: official-relay, official-imagegen"),
            "{line}"
        );
    }

    #[test]
    fn v2_alone_makes_official_relay_and_local_compaction_needs_nothing_remote() {
        let results = observed(&[
            (Responses, Supported, Validated),
            (CompactV1, Unsupported, Refused),
            (CompactV2, Supported, Validated),
        ]);
        let r = recommended(&results, Compaction::Auto);
        assert_eq!(r.preset, Some(Preset::OfficialRelay));
        // Remote v1 asked for: the official presets need /responses/compact, which is missing.
        let r = recommended(&results, Compaction::RemoteV1);
        assert_eq!(r.preset, Some(Preset::Default));
        let local = fit(Preset::OfficialRelay, Compaction::Local, &results);
        assert_eq!(local.fit, Fit::Works);
        assert_eq!(local.needs, vec![Responses]);
    }

    #[test]
    fn a_check_that_failed_lowers_the_confidence() {
        let results = observed(&[
            (Responses, Supported, Validated),
            (CompactV2, Error, Inconclusive),
        ]);
        let r = recommended(&results, Compaction::Auto);
        assert_eq!(r.preset, Some(Preset::Default));
        assert_eq!(r.confidence, Confidence::Low);
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("official-relay might work")),
            "{r:?}"
        );
    }

    #[test]
    fn no_preset_for_a_refused_key_a_chat_only_relay_or_no_api() {
        let refused = observed(&[(Responses, AuthFailed, Refused)]);
        let r = recommended(&refused, Compaction::Auto);
        assert_eq!(r.preset, None);
        assert!(r.reasons[0].contains("refused the key"), "{r:?}");

        let chat = observed(&[
            (Responses, Unsupported, Refused),
            (ChatCompletions, Supported, Validated),
        ]);
        let r = recommended(&chat, Compaction::Auto);
        assert_eq!(r.preset, None);
        assert!(r.reasons[0].contains("only Chat Completions"), "{r:?}");
        let line = verdict(&r, &fits(Compaction::Auto, &chat));
        assert!(
            line.starts_with("no preset: the relay speaks only Chat"),
            "{line}"
        );

        let none = observed(&[(Responses, Unsupported, Refused)]);
        assert!(recommended(&none, Compaction::Auto).reasons[0].contains("no Responses API"));
        let down = observed(&[(Responses, Error, Inconclusive)]);
        assert!(recommended(&down, Compaction::Auto).reasons[0].contains("could not be checked"));
    }

    #[test]
    fn a_text_only_model_rules_out_the_imagegen_presets() {
        let mut results = observed(&[
            (Responses, Supported, Validated),
            (CompactV2, Supported, Validated),
            (ImageGeneration, Supported, Validated),
        ]);
        let mut models = result(Models, Supported, Answered);
        models.catalog = Some(crate::diagnose::probe::Catalog {
            shape: "codex_catalog".into(),
            models: 1,
            incomplete: 0,
            model_listed: Some(true),
            model_takes_images: Some(false),
        });
        results.push(models);
        let r = recommended(&results, Compaction::Auto);
        assert_eq!(r.preset, Some(Preset::OfficialRelay));
        let all = fits(Compaction::Auto, &results);
        let imagegen = all
            .iter()
            .find(|f| f.preset == Preset::OfficialImagegen)
            .unwrap();
        assert_eq!(imagegen.fit, Fit::Fails);
        assert!(imagegen.reasons[0].contains("no image input"));
    }

    #[test]
    fn no_preset_after_an_outage_is_not_a_sure_verdict() {
        let down = observed(&[(Responses, Error, Inconclusive)]);
        assert_eq!(
            recommended(&down, Compaction::Auto).confidence,
            Confidence::Low
        );
        let refused = observed(&[(Responses, AuthFailed, Refused)]);
        assert_eq!(
            recommended(&refused, Compaction::Auto).confidence,
            Confidence::High
        );
    }

    #[test]
    fn chatgpt_bridge_says_what_else_it_needs() {
        let results = observed(&[(Responses, Supported, Answered)]);
        let bridge = fit(Preset::ChatgptBridge, Compaction::Auto, &results);
        assert_eq!(bridge.fit, Fit::Works);
        assert!(bridge.reasons[0].contains("ChatGPT"));
    }
}
