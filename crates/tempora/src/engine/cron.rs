//! Cron schedules (`cron_schedule` on start): when the next run of a cron workflow begins.
//!
//! The forms Temporal accepts: five fields (minute hour day-of-month month day-of-week, in
//! UTC), the descriptors `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`, and
//! `@every <duration>` (Go syntax, e.g. `@every 90s`, `@every 1h30m`).

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::clock::Millis;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    Every(Millis),
    Cron(Box<Cron>),
}

/// Parses a schedule, or says what is wrong with it.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    let invalid = |why: &str| format!("invalid CronSchedule {spec:?}: {why}");
    if let Some(every) = spec.strip_prefix("@every ") {
        let ms = go_duration_ms(every.trim()).ok_or_else(|| invalid("bad duration"))?;
        if ms < 1000 {
            return Err(invalid("the interval must be at least 1s"));
        }
        return Ok(Schedule::Every(ms));
    }
    let expanded = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => return Err(invalid("unknown descriptor")),
        other if other.starts_with("CRON_TZ=") || other.starts_with("TZ=") => {
            return Err(invalid("time zones other than UTC are not supported"))
        }
        other => other,
    };
    if expanded.split_whitespace().count() != 5 {
        return Err(invalid("expected five fields"));
    }
    let cron = Cron::new(expanded).parse().map_err(|e| invalid(&e.to_string()))?;
    Ok(Schedule::Cron(Box::new(cron)))
}

/// The delay from `now_ms` until the schedule's next time after `from_ms` (the previous
/// run's start, or now for the first run).
pub fn backoff_ms(schedule: &Schedule, from_ms: Millis, now_ms: Millis) -> Millis {
    let next = match schedule {
        Schedule::Every(every) => {
            // The first multiple of the interval after `from_ms` that is still ahead.
            let mut next = from_ms + every;
            if next <= now_ms {
                next += (now_ms - next) / every * every + every;
            }
            next
        }
        Schedule::Cron(cron) => {
            let start = DateTime::<Utc>::from_timestamp_millis(now_ms.max(from_ms)).unwrap_or_default();
            match cron.find_next_occurrence(&start, false) {
                Ok(next) => next.timestamp_millis(),
                Err(_) => return Millis::MAX / 4, // Never again (e.g. February 30th).
            }
        }
    };
    (next - now_ms).max(0)
}

/// Parses a Go duration such as `90s`, `1h30m`, `500ms`.
fn go_duration_ms(text: &str) -> Option<Millis> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(total as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_and_five_field_schedules() {
        assert!(matches!(parse("@every 1h30m"), Ok(Schedule::Every(5_400_000))));
        let every = parse("@every 2s").unwrap();
        assert_eq!(backoff_ms(&every, 10_000, 10_000), 2_000);
        assert_eq!(backoff_ms(&every, 10_000, 12_500), 1_500);
        let hourly = parse("@hourly").unwrap();
        // 00:59:30 → 01:00:00.
        assert_eq!(backoff_ms(&hourly, 0, 3_570_000), 30_000);
        let every_minute = parse("* * * * *").unwrap();
        assert_eq!(backoff_ms(&every_minute, 0, 61_000), 59_000);
        for bad in ["", "* * *", "@sometimes", "@every x", "CRON_TZ=Asia/Tokyo * * * * *", "61 * * * *"] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
