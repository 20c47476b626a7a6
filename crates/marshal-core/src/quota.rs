//! The subscription's rate-limit windows, as Claude Code's status line reports them
//! (`rate_limits.five_hour` and `rate_limits.seven_day`: `{used_percentage, resets_at}`; absent
//! for API-key users). `marshal statusline` saves the latest snapshot in the state directory;
//! the prompt hook reads it (one small bounded read) so that routing can step down a tier when
//! the 5-hour window is nearly used up.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// 0 to 100.
    pub used_percentage: f64,
    /// When the window resets, in seconds since the epoch.
    pub resets_at: i64,
}

/// The latest rate-limit snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    /// When the status line reported it, in seconds since the epoch.
    pub captured_at: i64,
    #[serde(default)]
    pub five_hour: Option<Window>,
    #[serde(default)]
    pub seven_day: Option<Window>,
}

/// A snapshot file is a few hundred bytes; anything bigger is not one.
const MAX_SNAPSHOT_BYTES: u64 = 4096;

impl RateLimits {
    /// The windows in a status-line payload, when it has any (subscribers only).
    pub fn from_status_line(payload: &serde_json::Value, now: i64) -> Option<RateLimits> {
        let limits = payload.get("rate_limits")?;
        let window = |name: &str| {
            let w = limits.get(name)?;
            let used = w.get("used_percentage")?.as_f64().filter(|p| p.is_finite())?.clamp(0.0, 100.0);
            let resets_at =
                w.get("resets_at").and_then(|r| r.as_i64().or_else(|| r.as_f64().map(|f| f as i64)))?;
            Some(Window { used_percentage: used, resets_at })
        };
        let (five_hour, seven_day) = (window("five_hour"), window("seven_day"));
        (five_hour.is_some() || seven_day.is_some()).then_some(RateLimits {
            captured_at: now,
            five_hour,
            seven_day,
        })
    }

    /// Reads a saved snapshot; a missing, oversized or unreadable file is no snapshot.
    pub fn load(path: &Path) -> Option<RateLimits> {
        let bytes =
            crate::fsutil::read_capped(path, MAX_SNAPSHOT_BYTES, crate::fsutil::Links::Refuse).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves the snapshot (atomically), unless the file already says the same.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if RateLimits::load(path).is_some_and(|saved| saved.same_windows(self)) {
            return Ok(());
        }
        crate::fsutil::write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }

    fn same_windows(&self, other: &RateLimits) -> bool {
        self.five_hour == other.five_hour && self.seven_day == other.seven_day
    }

    /// The 5-hour window's use, while that window is still the current one.
    pub fn five_hour_used(&self, now: i64) -> Option<f64> {
        self.five_hour.filter(|w| w.resets_at > now).map(|w| w.used_percentage)
    }
}

/// The word a user puts in a prompt to keep its tier when the budget is tight.
pub const CRITICAL_MARKER: &str = "#critical";

/// Whether the prompt is marked critical (`#critical` as a word, any case).
pub fn is_critical(prompt: &str) -> bool {
    let (bytes, marker) = (prompt.as_bytes(), CRITICAL_MARKER.as_bytes());
    (0..bytes.len().saturating_sub(marker.len() - 1)).any(|at| {
        bytes[at..at + marker.len()].eq_ignore_ascii_case(marker)
            && bytes.get(at + marker.len()).is_none_or(|next| !next.is_ascii_alphanumeric() && *next != b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn windows_come_from_the_status_line_and_expire_at_their_reset() {
        let payload = json!({"session_id": "s", "rate_limits": {
            "five_hour": {"used_percentage": 86.5, "resets_at": 2000},
            "seven_day": {"used_percentage": 12, "resets_at": 9000}}});
        let limits = RateLimits::from_status_line(&payload, 1000).unwrap();
        assert_eq!(limits.five_hour, Some(Window { used_percentage: 86.5, resets_at: 2000 }));
        assert_eq!(limits.seven_day.map(|w| w.used_percentage), Some(12.0));
        assert_eq!(limits.five_hour_used(1999), Some(86.5));
        assert_eq!(limits.five_hour_used(2000), None, "a window that has reset says nothing");
        // API-key users get no rate limits; odd values are clamped or ignored, never a panic.
        assert_eq!(RateLimits::from_status_line(&json!({"session_id": "s"}), 1), None);
        let odd =
            json!({"rate_limits": {"five_hour": {"used_percentage": 250, "resets_at": 5}, "seven_day": "x"}});
        assert_eq!(RateLimits::from_status_line(&odd, 1).unwrap().five_hour.unwrap().used_percentage, 100.0);
    }

    #[test]
    fn a_snapshot_round_trips_and_is_rewritten_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rate-limits.json");
        let first = RateLimits {
            captured_at: 1,
            five_hour: Some(Window { used_percentage: 50.0, resets_at: 9 }),
            seven_day: None,
        };
        first.save(&path).unwrap();
        assert_eq!(RateLimits::load(&path), Some(first));
        let same_later = RateLimits { captured_at: 2, ..first };
        same_later.save(&path).unwrap();
        assert_eq!(RateLimits::load(&path).unwrap().captured_at, 1, "unchanged windows are not rewritten");
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        assert_eq!(RateLimits::load(&path), None);
    }

    #[test]
    fn the_critical_marker_is_found_in_any_case() {
        assert!(is_critical("#critical fix the outage"));
        assert!(is_critical("fix the outage #CRITICAL"));
        assert!(!is_critical("fix this critical bug"));
        assert!(!is_critical("#crit"));
        assert!(!is_critical("explain #criticality scores"), "a word, not a prefix");
        assert!(is_critical("#critical: the login is down"));
    }
}
