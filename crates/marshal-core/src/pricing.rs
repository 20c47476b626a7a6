//! What tokens cost: a compiled-in price per model family, which the user's configuration can
//! override per model (`"prices"` in `~/.claude/marshal.json`). Used by `marshal usage` and the
//! report, never by a hook.
//!
//! Prices are US dollars per million tokens, as Anthropic lists them. A model id is matched by
//! family (`opus`, `sonnet`, `haiku`) and, where a family's price changed between generations,
//! by version; an id that names no family has no price: its tokens are still counted.

use std::collections::BTreeMap;

use serde::Serialize;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Writing the prompt cache, kept 5 minutes.
    pub cache_write_5m: f64,
    /// Writing the prompt cache, kept 1 hour.
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

impl Price {
    /// The usual ratios: cache writes 1.25x (5 minutes) and 2x (1 hour) input, reads 0.1x.
    const fn from_input_output(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cache_write_5m: input * 1.25,
            cache_write_1h: input * 2.0,
            cache_read: input / 10.0,
        }
    }
}

/// Token counts of one or more API responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    /// Cache writes in all (`cache_creation_input_tokens`).
    pub cache_creation: u64,
    /// The part of `cache_creation` kept for an hour (the rest is priced as 5-minute writes).
    pub cache_creation_1h: u64,
    pub cache_read: u64,
}

impl Tokens {
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_creation)
            .saturating_add(self.cache_read)
    }

    pub fn add(&mut self, other: &Tokens) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_creation = self.cache_creation.saturating_add(other.cache_creation);
        self.cache_creation_1h = self.cache_creation_1h.saturating_add(other.cache_creation_1h);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
    }

    /// What these tokens cost at `price`, in US dollars.
    pub fn cost(&self, price: &Price) -> f64 {
        let one_hour = self.cache_creation_1h.min(self.cache_creation);
        let five_minutes = self.cache_creation - one_hour;
        (self.input as f64 * price.input
            + self.output as f64 * price.output
            + five_minutes as f64 * price.cache_write_5m
            + one_hour as f64 * price.cache_write_1h
            + self.cache_read as f64 * price.cache_read)
            / 1_000_000.0
    }
}

/// Opus 4.5 and later.
const OPUS: Price = Price::from_input_output(5.0, 25.0);
/// Opus 3, 4 and 4.1.
const OPUS_OLD: Price = Price::from_input_output(15.0, 75.0);
const SONNET: Price = Price::from_input_output(3.0, 15.0);
/// Haiku 4.5 and later.
const HAIKU: Price = Price::from_input_output(1.0, 5.0);
const HAIKU_3_5: Price = Price::from_input_output(0.8, 4.0);
const HAIKU_3: Price =
    Price { input: 0.25, output: 1.25, cache_write_5m: 0.30, cache_write_1h: 0.50, cache_read: 0.03 };

/// The compiled-in price of a model id (`claude-opus-4-5-20251101`, `claude-3-5-haiku-latest`,
/// or an alias such as `sonnet`).
pub fn builtin_price(model: &str) -> Option<Price> {
    let model = model.to_ascii_lowercase();
    let version = version_of(&model);
    if model.contains("opus") {
        return Some(if version.is_some_and(|v| v < (4, 5)) { OPUS_OLD } else { OPUS });
    }
    if model.contains("sonnet") {
        return Some(SONNET);
    }
    if model.contains("haiku") {
        return Some(match version {
            Some(v) if v < (3, 5) => HAIKU_3,
            Some(v) if v < (4, 5) => HAIKU_3_5,
            _ => HAIKU,
        });
    }
    None
}

/// The generation in a model id: `claude-opus-4-1-2025…` is (4, 1), `claude-3-5-haiku` (3, 5),
/// `claude-haiku-5` (5, 0). Numbers of 4 digits or more are dates, not versions.
fn version_of(model: &str) -> Option<(u32, u32)> {
    let numbers: Vec<u32> = model
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty() && part.len() < 4)
        .filter_map(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [] => None,
        [major] => Some((*major, 0)),
        [major, minor, ..] => Some((*major, *minor)),
    }
}

/// Prices by model: the user's overrides first (an exact id, else the longest id prefix), then
/// the compiled-in table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceBook {
    pub overrides: BTreeMap<String, Price>,
}

impl PriceBook {
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(price) = self.overrides.get(model) {
            return Some(*price);
        }
        self.overrides
            .iter()
            .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, price)| *price)
            .or_else(|| builtin_price(model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_generations() {
        let input = |model: &str| builtin_price(model).map(|p| (p.input, p.output));
        assert_eq!(input("claude-opus-4-5-20251101"), Some((5.0, 25.0)));
        assert_eq!(input("claude-opus-5"), Some((5.0, 25.0)));
        assert_eq!(input("opus"), Some((5.0, 25.0)));
        assert_eq!(input("claude-opus-4-1-20250805"), Some((15.0, 75.0)));
        assert_eq!(input("claude-3-opus-20240229"), Some((15.0, 75.0)));
        assert_eq!(input("claude-sonnet-4-5"), Some((3.0, 15.0)));
        assert_eq!(input("claude-haiku-4-5-20251001"), Some((1.0, 5.0)));
        assert_eq!(input("claude-haiku-5-5"), Some((1.0, 5.0)));
        assert_eq!(input("claude-3-5-haiku-20241022"), Some((0.8, 4.0)));
        assert_eq!(input("claude-3-haiku-20240307"), Some((0.25, 1.25)));
        assert_eq!(input("<synthetic>"), None);
        assert_eq!(input("gpt-5"), None);
    }

    #[test]
    fn cost_splits_cache_writes_by_lifetime() {
        // Haiku 4.5: $1 in, $5 out, $1.25 / $2 cache writes, $0.10 reads per million.
        let tokens =
            Tokens { input: 5, output: 6, cache_creation: 10, cache_creation_1h: 6, cache_read: 100 };
        let cost = tokens.cost(&HAIKU);
        let expected = (5.0 * 1.0 + 6.0 * 5.0 + 4.0 * 1.25 + 6.0 * 2.0 + 100.0 * 0.1) / 1e6;
        assert!((cost - expected).abs() < 1e-15, "{cost} vs {expected}");
        // A 1-hour count above the total (a malformed line) cannot make the 5-minute part negative.
        let odd = Tokens { cache_creation: 2, cache_creation_1h: 9, ..Tokens::default() };
        assert!((odd.cost(&HAIKU) - 2.0 * 2.0 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn overrides_win_by_exact_id_then_longest_prefix() {
        let flat =
            |n: f64| Price { input: n, output: n, cache_write_5m: n, cache_write_1h: n, cache_read: n };
        let book = PriceBook {
            overrides: [
                ("claude-".to_string(), flat(1.0)),
                ("claude-opus".to_string(), flat(2.0)),
                ("x".to_string(), flat(3.0)),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(book.price("claude-opus-4-5").map(|p| p.input), Some(2.0));
        assert_eq!(book.price("claude-haiku-4-5").map(|p| p.input), Some(1.0));
        assert_eq!(book.price("x").map(|p| p.input), Some(3.0));
        assert_eq!(book.price("sonnet").map(|p| p.input), Some(3.0), "falls back to the built-in table");
        assert_eq!(book.price("mystery"), None);
    }
}
