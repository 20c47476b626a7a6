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

/// When a subscription limit resets, as Claude Code words it in the error that ends a turn:
/// "You've hit your 5-hour limit · resets 7pm (UTC)". The time is in the zone in parentheses,
/// which is the local zone of the process (marshal starts that process, so it is `now`'s zone);
/// it shows minutes only when they are not zero ("7:30pm"), and a reset more than a day away
/// gets its date ("Nov 23, 5pm", with the year when it differs). The time shown is cut to the
/// minute, so the reset is at most a minute after it: the minute after is returned. `None` when
/// the text names no reset time.
pub fn reset_named_in<Tz: chrono::TimeZone>(
    text: &str,
    now: &chrono::DateTime<Tz>,
) -> Option<chrono::DateTime<Tz>> {
    use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
    let after = &text[text.find("resets ")? + "resets ".len()..];
    let shown = after.split(" (").next()?.trim_end_matches(['.', ' ']);
    // "7pm", "7:30pm", "Nov 23, 5pm", "Jan 2, 2027, 5pm".
    let mut parts: Vec<&str> = shown.split(", ").collect();
    let clock = parts.pop()?.trim();
    let (digits, half) = match clock.len().checked_sub(2).map(|at| clock.split_at(at)) {
        Some((digits, half)) if half.eq_ignore_ascii_case("am") || half.eq_ignore_ascii_case("pm") => {
            (digits, half)
        }
        _ => return None,
    };
    let (hour, minute) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (digits.parse::<u32>().ok()?, 0),
    };
    if !(1..=12).contains(&hour) || minute > 59 {
        return None;
    }
    let hour = hour % 12 + if half.eq_ignore_ascii_case("pm") { 12 } else { 0 };
    let time = NaiveTime::from_hms_opt(hour, minute, 0)?;
    let local_now = now.naive_local();
    let reset = match parts.as_slice() {
        [] => {
            let today = local_now.date().and_time(time);
            // A time already past is tomorrow's (a minute's grace: the shown time is cut).
            if today + Duration::minutes(1) < local_now {
                today + Duration::days(1)
            } else {
                today
            }
        }
        [month_day] | [month_day, _] => {
            let (month, day) = month_day.split_once(' ')?;
            const MONTHS: [&str; 12] =
                ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
            let day: u32 = day.parse().ok()?;
            let year = match parts.get(1) {
                Some(year) => year.trim().parse().ok()?,
                None => local_now.year(),
            };
            let reset = NaiveDate::from_ymd_opt(year, month, day)?.and_time(time);
            // No year shown: a date already past is next year's.
            if parts.len() == 1 && reset + Duration::days(1) < local_now {
                NaiveDate::from_ymd_opt(year + 1, month, day)?.and_time(time)
            } else {
                reset
            }
        }
        _ => return None,
    };
    let reset = now.timezone().from_local_datetime(&(reset + Duration::minutes(1))).earliest()?;
    Some(reset)
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
    use chrono::{FixedOffset, TimeZone, Utc};
    use serde_json::json;

    #[test]
    fn a_limit_message_names_when_the_quota_resets() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 16, 20, 5).unwrap();
        let reset = |text: &str| reset_named_in(text, &now).map(|t| t.to_rfc3339());
        // Later today, with and without minutes; cut to the minute, so the minute after.
        assert_eq!(
            reset("You've hit your 5-hour limit · resets 7pm (UTC)").as_deref(),
            Some("2026-11-21T19:01:00+00:00")
        );
        assert_eq!(
            reset("You've hit your limit · resets 4:45pm (UTC)").as_deref(),
            Some("2026-11-21T16:46:00+00:00")
        );
        // A time already past is tomorrow's; the current minute is not past.
        assert_eq!(reset("limit · resets 9am (UTC)").as_deref(), Some("2026-11-22T09:01:00+00:00"));
        assert_eq!(reset("limit · resets 4:20pm (UTC)").as_deref(), Some("2026-11-21T16:21:00+00:00"));
        assert_eq!(reset("limit · resets 12am (UTC)").as_deref(), Some("2026-11-22T00:01:00+00:00"));
        // More than a day away: the date, and the year when it differs.
        assert_eq!(
            reset("You've hit your weekly limit · resets Nov 24, 5pm (UTC)").as_deref(),
            Some("2026-11-24T17:01:00+00:00")
        );
        assert_eq!(reset("limit · resets Jan 2, 9:30am (UTC)").as_deref(), Some("2027-01-02T09:31:00+00:00"));
        assert_eq!(
            reset("limit · resets Jan 2, 2027, 9am (UTC)").as_deref(),
            Some("2027-01-02T09:01:00+00:00")
        );
        // Another sentence shape ("It resets ...").
        assert_eq!(
            reset("You've hit your limit. It resets Nov 30, 8am.").as_deref(),
            Some("2026-11-30T08:01:00+00:00")
        );
        for text in [
            "API Error: Request rejected (429) · try again later",
            "resets soon",
            "resets 13pm (UTC)",
            "resets Foo 3, 5pm",
        ] {
            assert_eq!(reset(text), None, "{text}");
        }
        // The time is read in the process's own zone.
        let berlin = FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2026, 11, 21, 17, 20, 0).unwrap();
        assert_eq!(
            reset_named_in("limit · resets 7pm (Europe/Berlin)", &berlin).map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-21T19:01:00+01:00")
        );
    }

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
