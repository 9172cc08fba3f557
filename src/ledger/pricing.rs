//! Model prices: a built-in table for current OpenAI models, local overrides, and per-provider
//! multipliers. Pure: a model name and token counts in, a cost and where its price came from out.
//!
//! Cached input tokens are counted inside input tokens (as Codex and the Responses API count
//! them): cost = (input − cached) × input price + cached × cached-input price + output × output
//! price. Reasoning tokens are part of output tokens.
//!
//! Service tiers: OpenAI bills a response by the tier it says it was processed in
//! (`response.service_tier`): `flex` at half the standard price, `priority` at a premium
//! (twice the standard price for the GPT-5 family), `default`/`auto` at the standard price.
//! The tier's multiplier applies on top of the model's price and the provider's multiplier;
//! `[service_tiers]` in `pricing_overrides.toml` replaces a built-in multiplier or adds one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::usage::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

/// When the built-in table was last checked against OpenAI's published prices.
pub const BUILT_IN_SOURCE: &str = "built-in (OpenAI list prices, 2026-11)";

/// The built-in table: model → (input, cached input, output) USD per 1M tokens.
const BUILT_IN: &[(&str, f64, f64, f64)] = &[
    ("gpt-5.5", 5.00, 0.50, 30.00),
    ("gpt-5.4", 2.50, 0.25, 15.00),
    ("gpt-5.4-mini", 0.75, 0.075, 4.50),
    ("gpt-5.3-codex", 1.75, 0.175, 14.00),
    ("gpt-5.2", 1.75, 0.175, 14.00),
    ("gpt-5.2-codex", 1.75, 0.175, 14.00),
    ("gpt-5.1", 1.25, 0.125, 10.00),
    ("gpt-5.1-codex", 1.25, 0.125, 10.00),
    ("gpt-5.1-codex-max", 1.25, 0.125, 10.00),
    ("gpt-5.1-codex-mini", 0.25, 0.025, 2.00),
    ("gpt-5", 1.25, 0.125, 10.00),
    ("gpt-5-codex", 1.25, 0.125, 10.00),
    ("gpt-5-mini", 0.25, 0.025, 2.00),
    ("gpt-5-nano", 0.05, 0.005, 0.40),
    ("gpt-4.1", 2.00, 0.50, 8.00),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("gpt-4o", 2.50, 1.25, 10.00),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("o3", 2.00, 0.50, 8.00),
    ("o4-mini", 1.10, 0.275, 4.40),
];

/// Built-in service-tier multipliers (tiers not listed cost the standard price).
const BUILT_IN_TIERS: &[(&str, f64)] = &[("flex", 0.5), ("priority", 2.0)];

/// Reasoning-effort suffixes some relays append to model names.
const EFFORT_SUFFIXES: [&str; 5] = ["-minimal", "-low", "-medium", "-high", "-xhigh"];

/// One override in `pricing_overrides.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRow {
    input_per_1m_usd: Amount,
    output_per_1m_usd: Amount,
    /// Defaults to the input price.
    cached_input_per_1m_usd: Option<Amount>,
}

/// A price written as a number or a decimal string.
#[derive(Debug, Clone, Copy)]
struct Amount(f64);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{t}` is not a number")))?,
        };
        if value.is_finite() && value >= 0.0 {
            Ok(Amount(value))
        } else {
            Err(serde::de::Error::custom(
                "prices must be non-negative numbers",
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverridesFile {
    #[serde(default)]
    models: BTreeMap<String, OverrideRow>,
    /// Tier name → multiplier of the standard price.
    #[serde(default)]
    service_tiers: BTreeMap<String, Amount>,
}

/// The price table in force.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    /// Lower-cased model (or pattern with one `*`) → price, from the overrides file.
    overrides: BTreeMap<String, Price>,
    overrides_file: Option<String>,
    /// Lower-cased tier → multiplier, from the overrides file (over [`BUILT_IN_TIERS`]).
    tiers: BTreeMap<String, f64>,
}

/// A priced request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    pub usd: f64,
    /// Where the price came from, e.g. `built-in …` or `pricing_overrides.toml (relay-*)`.
    pub source: String,
}

impl PriceBook {
    /// The built-in table only.
    pub fn built_in() -> Self {
        Self::default()
    }

    /// The built-in table with `path` (when it exists) over it.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::built_in()),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Self::from_overrides(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The built-in table with the overrides in `text` over it.
    pub fn from_overrides(text: &str) -> anyhow::Result<Self> {
        let deserializer = toml::Deserializer::parse(text)?;
        let file: OverridesFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("`{path}`: {}", e.into_inner())
        })?;
        let mut overrides = BTreeMap::new();
        for (model, row) in file.models {
            if model.matches('*').count() > 1 {
                anyhow::bail!("`models.{model}`: use at most one `*`");
            }
            let price = Price {
                input: row.input_per_1m_usd.0,
                output: row.output_per_1m_usd.0,
                cached_input: row
                    .cached_input_per_1m_usd
                    .unwrap_or(row.input_per_1m_usd)
                    .0,
            };
            if overrides
                .insert(model.to_ascii_lowercase(), price)
                .is_some()
            {
                anyhow::bail!("`models.{model}` is listed twice (names are case-insensitive)");
            }
        }
        let mut tiers = BTreeMap::new();
        for (tier, multiplier) in file.service_tiers {
            if tiers
                .insert(tier.trim().to_ascii_lowercase(), multiplier.0)
                .is_some()
            {
                anyhow::bail!(
                    "`service_tiers.{tier}` is listed twice (names are case-insensitive)"
                );
            }
        }
        Ok(Self {
            overrides,
            overrides_file: Some("pricing_overrides.toml".into()),
            tiers,
        })
    }

    /// The price of `model` and where it comes from.
    pub fn price(&self, model: &str) -> Option<(Price, String)> {
        let model = model.trim().to_ascii_lowercase();
        let file = self.overrides_file.as_deref().unwrap_or("overrides");
        if let Some(price) = self.overrides.get(&model) {
            return Some((*price, format!("{file} ({model})")));
        }
        let wildcard = self
            .overrides
            .iter()
            .filter(|(pattern, _)| wildcard_matches(pattern, &model))
            .min_by_key(|(pattern, _)| std::cmp::Reverse(pattern.len()));
        if let Some((pattern, price)) = wildcard {
            return Some((*price, format!("{file} ({pattern})")));
        }
        let built_in = |name: &str| {
            BUILT_IN.iter().find(|row| row.0 == name).map(|row| Price {
                input: row.1,
                cached_input: row.2,
                output: row.3,
            })
        };
        if let Some(price) = built_in(&model) {
            return Some((price, BUILT_IN_SOURCE.into()));
        }
        let base = EFFORT_SUFFIXES
            .iter()
            .find_map(|suffix| model.strip_suffix(suffix))?;
        built_in(base).map(|price| (price, format!("{BUILT_IN_SOURCE} as {base}")))
    }

    /// The cost of `usage` for `model`, times the provider's `multiplier`. `None` when the
    /// model has no price (never a made-up zero).
    pub fn cost(&self, model: &str, usage: &Usage, multiplier: f64) -> Option<Cost> {
        self.cost_in_tier(model, usage, multiplier, None)
    }

    /// The multiplier of a service tier: the overrides file's, else the built-in one, else 1
    /// (`default`, `auto` and tiers without a price of their own cost the standard price).
    pub fn tier_multiplier(&self, tier: &str) -> f64 {
        let tier = tier.trim().to_ascii_lowercase();
        self.tiers
            .get(&tier)
            .copied()
            .or_else(|| BUILT_IN_TIERS.iter().find(|t| t.0 == tier).map(|t| t.1))
            .unwrap_or(1.0)
    }

    /// Every service tier with a multiplier of its own, for `pricing list`.
    pub fn tiers(&self) -> Vec<(String, f64)> {
        let mut tiers: BTreeMap<String, f64> = BUILT_IN_TIERS
            .iter()
            .map(|(name, m)| (name.to_string(), *m))
            .collect();
        tiers.extend(self.tiers.clone());
        tiers.into_iter().collect()
    }

    /// [`PriceBook::cost`] for a response processed in service `tier` (as the response says).
    pub fn cost_in_tier(
        &self,
        model: &str,
        usage: &Usage,
        multiplier: f64,
        tier: Option<&str>,
    ) -> Option<Cost> {
        let (price, source) = self.price(model)?;
        let tier_multiplier = tier.map_or(1.0, |t| self.tier_multiplier(t));
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        let usd = (fresh as f64 * price.input
            + cached as f64 * price.cached_input
            + usage.output_tokens as f64 * price.output)
            / 1e6
            * multiplier
            * tier_multiplier;
        let mut source = if (multiplier - 1.0).abs() > f64::EPSILON {
            format!("{source} × {multiplier}")
        } else {
            source
        };
        if let Some(tier) = tier.filter(|_| (tier_multiplier - 1.0).abs() > f64::EPSILON) {
            source = format!("{source} × {tier_multiplier} ({tier} tier)");
        }
        Some(Cost { usd, source })
    }

    /// Every price, for `pricing list`: (model, price, source), overrides first.
    pub fn table(&self) -> Vec<(String, Price, String)> {
        let file = self.overrides_file.as_deref().unwrap_or("overrides");
        let mut rows: Vec<(String, Price, String)> = self
            .overrides
            .iter()
            .map(|(m, p)| (m.clone(), *p, file.to_string()))
            .collect();
        for (name, input, cached_input, output) in BUILT_IN {
            let price = Price {
                input: *input,
                cached_input: *cached_input,
                output: *output,
            };
            let overridden = self.overrides.contains_key(*name);
            rows.push((
                name.to_string(),
                price,
                if overridden {
                    format!("{BUILT_IN_SOURCE} (overridden)")
                } else {
                    BUILT_IN_SOURCE.to_string()
                },
            ));
        }
        rows
    }
}

fn wildcard_matches(pattern: &str, model: &str) -> bool {
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            model.len() >= prefix.len() + suffix.len()
                && model.starts_with(prefix)
                && model.ends_with(suffix)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_input_tokens: cached,
            output_tokens: output,
            reasoning_tokens: 0,
            total_tokens: input + output,
        }
    }

    #[test]
    fn built_in_prices_count_cached_tokens_inside_input() {
        let book = PriceBook::built_in();
        // gpt-5.1: 200k fresh × 1.25 + 800k cached × 0.125 + 10k × 10 per 1M.
        let cost = book
            .cost("gpt-5.1", &usage(1_000_000, 800_000, 10_000), 1.0)
            .unwrap();
        assert!((cost.usd - (0.25 + 0.1 + 0.1)).abs() < 1e-9, "{}", cost.usd);
        assert_eq!(cost.source, BUILT_IN_SOURCE);
        let high = book
            .cost("GPT-5.1-high", &usage(1_000_000, 0, 0), 1.0)
            .unwrap();
        assert!((high.usd - 1.25).abs() < 1e-9);
        assert!(high.source.ends_with("as gpt-5.1"));
        assert_eq!(
            book.cost("mystery-model", &usage(1, 0, 1), 1.0),
            None,
            "unknown, never zero"
        );
    }

    #[test]
    fn overrides_exact_then_longest_wildcard_then_built_in() {
        let book = PriceBook::from_overrides(
            "[models.\"gpt-5.1\"]\ninput_per_1m_usd = 1\noutput_per_1m_usd = \"8\"\ncached_input_per_1m_usd = 0.1\n\
             [models.\"relay-*\"]\ninput_per_1m_usd = 2\noutput_per_1m_usd = 2\n\
             [models.\"relay-gpt-*\"]\ninput_per_1m_usd = 3\noutput_per_1m_usd = 3\n",
        )
        .unwrap();
        assert_eq!(
            book.price("gpt-5.1").unwrap().0,
            Price {
                input: 1.0,
                cached_input: 0.1,
                output: 8.0
            }
        );
        assert_eq!(
            book.price("relay-gpt-5").unwrap().1,
            "pricing_overrides.toml (relay-gpt-*)"
        );
        assert_eq!(book.price("relay-o3").unwrap().0.input, 2.0);
        assert_eq!(
            book.price("relay-o3").unwrap().0.cached_input,
            2.0,
            "cached defaults to input"
        );
        assert_eq!(book.price("gpt-5.4").unwrap().1, BUILT_IN_SOURCE);
    }

    #[test]
    fn multipliers_scale_and_are_named() {
        let book = PriceBook::built_in();
        let cost = book.cost("gpt-5.4", &usage(1_000_000, 0, 0), 0.5).unwrap();
        assert!((cost.usd - 1.25).abs() < 1e-9);
        assert!(cost.source.ends_with("× 0.5"));
    }

    #[test]
    fn service_tiers_scale_the_price_and_can_be_overridden() {
        let book = PriceBook::built_in();
        let base = book.cost("gpt-5.4", &usage(1_000_000, 0, 0), 1.0).unwrap();
        assert!((base.usd - 2.5).abs() < 1e-9);
        let flex = book
            .cost_in_tier("gpt-5.4", &usage(1_000_000, 0, 0), 1.0, Some("flex"))
            .unwrap();
        assert!((flex.usd - 1.25).abs() < 1e-9);
        assert_eq!(flex.source, format!("{BUILT_IN_SOURCE} × 0.5 (flex tier)"));
        let priority = book
            .cost_in_tier("gpt-5.4", &usage(1_000_000, 0, 0), 0.5, Some("Priority"))
            .unwrap();
        assert!((priority.usd - 2.5).abs() < 1e-9, "provider × tier");
        for standard in ["default", "auto", "scale"] {
            let cost = book
                .cost_in_tier("gpt-5.4", &usage(1_000_000, 0, 0), 1.0, Some(standard))
                .unwrap();
            assert_eq!(cost, base, "{standard}");
        }
        let custom =
            PriceBook::from_overrides("[service_tiers]\npriority = \"1.75\"\nscale = 3\n").unwrap();
        assert_eq!(custom.tier_multiplier("priority"), 1.75);
        assert_eq!(custom.tier_multiplier("SCALE"), 3.0);
        assert_eq!(custom.tier_multiplier("flex"), 0.5, "built-in kept");
        assert_eq!(
            custom.tiers(),
            vec![
                ("flex".into(), 0.5),
                ("priority".into(), 1.75),
                ("scale".into(), 3.0)
            ]
        );
        assert!(PriceBook::from_overrides("[service_tiers]\nflex = -1\n").is_err());
    }

    #[test]
    fn bad_overrides_are_refused() {
        assert!(
            PriceBook::from_overrides("[models.x]\ninput_per_1m_usd = -1\noutput_per_1m_usd = 1\n")
                .is_err()
        );
        assert!(
            PriceBook::from_overrides(
                "[models.x]\ninput_per_1m_usd = \"cheap\"\noutput_per_1m_usd = 1\n"
            )
            .is_err()
        );
        assert!(PriceBook::from_overrides("[models.X]\ninput_per_1m_usd = 1\noutput_per_1m_usd = 1\n[models.x]\ninput_per_1m_usd = 1\noutput_per_1m_usd = 1\n").is_err());
        assert!(
            PriceBook::from_overrides("[models.x]\ninput_per_1m_usd = 1\n").is_err(),
            "output price required"
        );
    }
}
