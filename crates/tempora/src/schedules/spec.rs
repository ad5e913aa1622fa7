//! Schedule specs: canonical form, next matching time, and jitter — as Temporal computes them.
//!
//! This is a port of the behaviour of Temporal's `service/worker/scheduler/spec.go` and
//! `calendar.go` (server 1.32), checked against the real server (see the `reference` tests).
//! It answers three questions:
//!
//! - [`canonicalize`]: what does CreateSchedule / UpdateSchedule store and DescribeSchedule
//!   return for a spec? Cron strings and string calendars become `structured_calendar`
//!   entries, `@every` crons become intervals, `exclude_calendar` becomes
//!   `exclude_structured_calendar`, and ranges come back with `end >= start` and `step >= 1`
//!   (the form Describe and ListSchedules show). Errors are the texts the frontend returns
//!   (`Invalid schedule spec: ...`).
//! - [`CompiledSpec::next_after`]: the next nominal time strictly after a time: the union of
//!   calendars and intervals, minus exclusions, after `start_time` and not past `end_time`.
//! - [`CompiledSpec::jittered`] / [`CompiledSpec::next_time`]: the deterministic jitter Temporal
//!   adds (farmhash of the nominal time and `"<namespace id>-<schedule id>"`).
//!
//! What it is not for: it does no I/O, reads no clock and keeps no state; deciding *when* to
//! start a run (catch-up window, overlap policy, pause, remaining actions) belongs to the
//! scheduler that calls it. Times are Unix milliseconds; matching has one-second resolution,
//! as in Temporal.
//!
//! Deliberate gaps: `timezone_data` (an inline zoneinfo blob) is rejected rather than parsed;
//! the zone name `Local` means UTC; and a spec whose exclusions hide every match for more than
//! [`MAX_EXCLUDED_CANDIDATES`] candidates reports "no next time" where Temporal would keep
//! searching (Temporal only logs a warning by default).

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike};
use chrono_tz::Tz;
use prost_types::{Duration, Timestamp};
use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec,
};

/// The frontend prefixes every spec error with this (`workflow_handler.go`).
pub const INVALID_SPEC_PREFIX: &str = "Invalid schedule spec: ";

/// ListScheduleMatchingTimes returns at most this many times (Temporal's
/// `maxListMatchingTimesCount`).
pub const MAX_LIST_MATCHING_TIMES: usize = 1000;

/// Bound on how many excluded candidates one [`CompiledSpec::next_after`] call skips before
/// giving up. Temporal's default is unbounded (it only warns after 86 400); we bound it so a
/// spec like "every second except weekends" still resolves (172 800 candidates) but an
/// adversarial one cannot pin a core until the year 2100.
pub const MAX_EXCLUDED_CANDIDATES: usize = 1_000_000;

/// Calendar years outside this range cannot be written in a spec, and no time after the end
/// of `MAX_CALENDAR_YEAR` (UTC) is ever returned.
const MIN_CALENDAR_YEAR: i32 = 2000;
const MAX_CALENDAR_YEAR: i32 = 2100;
/// Longest `comment` accepted on a calendar, in bytes.
const MAX_COMMENT_LEN_BYTES: usize = 200;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Canonical form
// ---------------------------------------------------------------------------------------------

/// Validates `spec` and returns the form DescribeSchedule shows for it.
///
/// Order and texts follow Temporal: interval durations are checked first, then calendars,
/// exclusions and cron strings are parsed (in that order, appended after any structured
/// entries already present), time zones are reconciled, structured calendars and intervals are
/// validated, and finally the time zone is loaded. Errors carry [`INVALID_SPEC_PREFIX`].
pub fn canonicalize(spec: &ScheduleSpec) -> Result<ScheduleSpec, String> {
    let mut canonical = canonical_form(spec).map_err(|e| format!("{INVALID_SPEC_PREFIX}{e}"))?;
    load_zone(&canonical).map_err(|e| format!("{INVALID_SPEC_PREFIX}{e}"))?;
    clean(&mut canonical);
    Ok(canonical)
}

/// Temporal's `canonicalizeSpec`, without the error prefix and without cleaning ranges.
fn canonical_form(spec: &ScheduleSpec) -> Result<ScheduleSpec, String> {
    for interval in &spec.interval {
        if let Some(d) = &interval.interval {
            check_proto_duration(d).map_err(|e| format!("interval is not a valid duration: {e}"))?;
        }
        if let Some(d) = &interval.phase {
            check_proto_duration(d).map_err(|e| format!("phase is not a valid duration: {e}"))?;
        }
    }

    let mut out = spec.clone();

    for cal in std::mem::take(&mut out.calendar) {
        out.structured_calendar.push(parse_calendar(&cal)?);
    }
    #[allow(deprecated)] // still sent by SDKs, and Temporal still accepts it
    for cal in std::mem::take(&mut out.exclude_calendar) {
        out.exclude_structured_calendar.push(parse_calendar(&cal)?);
    }

    // All cron strings must agree on a zone, where "no zone" is a zone of its own.
    let mut cron_zone: Option<String> = None;
    for cron in std::mem::take(&mut out.cron_string) {
        let parsed = parse_cron(&cron)?;
        if cron_zone.as_ref().is_some_and(|z| *z != parsed.zone) {
            return Err("conflicting timezone names".into());
        }
        cron_zone = Some(parsed.zone);
        match parsed.kind {
            CronKind::Calendar(cal) => out.structured_calendar.push(cal),
            CronKind::Interval(iv) => out.interval.push(iv),
        }
    }
    if let Some(zone) = cron_zone.filter(|z| !z.is_empty()) {
        let conflicts = !out.timezone_name.is_empty() && out.timezone_name != zone;
        if conflicts || !out.timezone_data.is_empty() {
            return Err("conflicting timezone names".into());
        }
        out.timezone_name = zone;
    }

    // Exclusions are deliberately not validated: Temporal doesn't, and a stricter check here
    // would reject specs the real server accepts.
    for cal in &out.structured_calendar {
        validate_structured(cal)?;
    }
    for interval in &out.interval {
        validate_interval(interval)?;
    }
    Ok(out)
}

/// What Temporal's `CleanSpec` does before Describe/List: `end < start` becomes `end = start`
/// and `step 0` becomes 1, so clients never see the wire-size shortcuts.
fn clean(spec: &mut ScheduleSpec) {
    let all = spec.structured_calendar.iter_mut().chain(spec.exclude_structured_calendar.iter_mut());
    for cal in all {
        for ranges in [
            &mut cal.second,
            &mut cal.minute,
            &mut cal.hour,
            &mut cal.day_of_month,
            &mut cal.month,
            &mut cal.year,
            &mut cal.day_of_week,
        ] {
            for r in ranges.iter_mut() {
                if r.end < r.start {
                    r.end = r.start;
                }
                if r.step == 0 {
                    r.step = 1;
                }
            }
        }
    }
}

fn validate_structured(cal: &StructuredCalendarSpec) -> Result<(), String> {
    let mut errs = Vec::new();
    let mut check = |ranges: &[Range], field: &str, min: i32, max: i32| {
        for r in ranges {
            if r.start < min || r.start > max {
                errs.push(format!("{field} Start is not in range [{min}-{max}]"));
            }
            // End 0 means "same as start" on the wire.
            if r.end != 0 && (r.end < r.start || r.end > max) {
                errs.push(format!("{field} End is before Start or not in range [{min}-{max}]"));
            }
            if r.step < 0 {
                errs.push(format!("{field} has invalid Step"));
            }
        }
    };
    check(&cal.second, "Second", 0, 59);
    check(&cal.minute, "Minute", 0, 59);
    check(&cal.hour, "Hour", 0, 23);
    check(&cal.day_of_month, "DayOfMonth", 1, 31);
    check(&cal.month, "Month", 1, 12);
    check(&cal.year, "Year", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR);
    check(&cal.day_of_week, "DayOfWeek", 0, 6);
    if cal.comment.len() > MAX_COMMENT_LEN_BYTES {
        errs.push("comment is too long".into());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid calendar spec: {}", errs.join(", ")))
    }
}

fn validate_interval(interval: &IntervalSpec) -> Result<(), String> {
    let every = duration_nanos(interval.interval.as_ref());
    let phase = duration_nanos(interval.phase.as_ref());
    if every < NANOS_PER_SECOND as i64 {
        Err("interval is too small".into())
    } else if phase < 0 {
        Err("phase is negative".into())
    } else if phase >= every {
        // Sic: Temporal says "greater" but also rejects equal.
        Err("phase cannot be greater than Interval".into())
    } else {
        Ok(())
    }
}

/// Go's `durationpb.CheckValid`. Go prints the message in protobuf text format; we print the
/// same fields without Go's deliberately unstable spacing.
fn check_proto_duration(d: &Duration) -> Result<(), String> {
    const MAX_SECONDS: i64 = 315_576_000_000; // 10 000 years
    let text = [("seconds", d.seconds), ("nanos", i64::from(d.nanos))]
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ");
    if !(-MAX_SECONDS..=MAX_SECONDS).contains(&d.seconds) {
        Err(format!("proto: duration ({text}) exceeds -+10000 years"))
    } else if d.nanos <= -1_000_000_000 || d.nanos >= 1_000_000_000 {
        Err(format!("proto: duration ({text}) has out-of-range nanos"))
    } else if (d.seconds > 0 && d.nanos < 0) || (d.seconds < 0 && d.nanos > 0) {
        Err(format!("proto: duration ({text}) has seconds and nanos with different signs"))
    } else {
        Ok(())
    }
}

/// A protobuf duration as Go's `time.Duration` (nanoseconds, saturating); missing is zero.
fn duration_nanos(d: Option<&Duration>) -> i64 {
    d.map_or(0, |d| {
        let n = i128::from(d.seconds) * NANOS_PER_SECOND + i128::from(d.nanos);
        n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    })
}

fn duration_from_nanos(n: i64) -> Duration {
    Duration { seconds: n / 1_000_000_000, nanos: (n % 1_000_000_000) as i32 }
}

// ---------------------------------------------------------------------------------------------
// Parsing calendars and cron strings
// ---------------------------------------------------------------------------------------------

/// How a calendar field's values are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Int,
    /// Like `Int`, but the default `*` is the empty list (every year, unbounded).
    Year,
    /// Also accepts month-name prefixes of at least three letters.
    Month,
    /// Also accepts weekday-name prefixes of at least two letters; 7 means Sunday.
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAY_NAMES: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/// Parses a string calendar; errors of all fields are reported together, in Temporal's field
/// order (second, minute, hour, day of week, day of month, month, year).
fn parse_calendar(cal: &CalendarSpec) -> Result<StructuredCalendarSpec, String> {
    let mut errs = Vec::new();
    let mut field = |s: &str, name: &str, default: &str, min: i32, max: i32, kind: FieldKind| {
        parse_field(s, name, default, min, max, kind).unwrap_or_else(|e| {
            errs.push(e);
            Vec::new()
        })
    };
    let second = field(&cal.second, "Second", "0", 0, 59, FieldKind::Int);
    let minute = field(&cal.minute, "Minute", "0", 0, 59, FieldKind::Int);
    let hour = field(&cal.hour, "Hour", "0", 0, 23, FieldKind::Int);
    let day_of_week = field(&cal.day_of_week, "DayOfWeek", "*", 0, 7, FieldKind::DayOfWeek);
    let day_of_month = field(&cal.day_of_month, "DayOfMonth", "*", 1, 31, FieldKind::Int);
    let month = field(&cal.month, "Month", "*", 1, 12, FieldKind::Month);
    let year = field(&cal.year, "Year", "*", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR, FieldKind::Year);
    if !errs.is_empty() {
        return Err(errs.join(", "));
    }
    Ok(StructuredCalendarSpec {
        second,
        minute,
        hour,
        day_of_month,
        month,
        year,
        day_of_week,
        comment: cal.comment.clone(),
    })
}

/// Parses one field: `*`, `x`, `x-z`, `x/y` (x to max), `x-z/y`, `*/y`, comma lists of those.
/// Returns Temporal's compact ranges (end 0 when equal to start, step 0 when 1); [`clean`]
/// expands them for display.
fn parse_field(s: &str, name: &str, default: &str, min: i32, max: i32, kind: FieldKind) -> Result<Vec<Range>, String> {
    let s = match s.trim() {
        "" => default,
        s => s,
    };
    if s == "*" && kind == FieldKind::Year {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for part in s.split(',') {
        let (part, step) = match part.matches('/').count() {
            0 => (part, None),
            1 => {
                let (part, step) = part.split_once('/').unwrap_or((part, ""));
                if step.is_empty() {
                    return Err(format!("{name} missing step value"));
                }
                let step = go_atoi(step)?;
                if step < 1 {
                    return Err(format!("{name} has invalid Step"));
                }
                (part, Some(step))
            }
            _ => return Err(format!("{name} has too many slashes")),
        };
        let (mut start, mut end) = (min, max);
        if part != "*" {
            if let Some((lo, hi)) = part.split_once('-') {
                if hi.contains('-') {
                    return Err(format!("{name} has too many dashes"));
                }
                start = parse_value(lo, min, max, kind)
                    .ok_or_else(|| format!("{name} Start is not in range [{min}-{max}]"))?;
                end = parse_value(hi, start, max, kind)
                    .ok_or_else(|| format!("{name} End is before Start or not in range [{min}-{max}]"))?;
            } else {
                start =
                    parse_value(part, min, max, kind).ok_or_else(|| format!("{name} is not in range [{min}-{max}]"))?;
                // "x/y" runs from x to the maximum; a bare "x" is just x.
                if step.is_none() {
                    end = start;
                }
            }
        }
        let step = step.unwrap_or(1);
        // Day of week 7 is Sunday, stored as 0. A range ending at 7 keeps a single range when
        // 7 is not actually hit or when it already includes 0..=1 with step 1 (so 0 or 1 to 7
        // becomes 0-6); otherwise a separate 0 is added ("3-7" → 0 and 3-6).
        if kind == FieldKind::DayOfWeek && end == 7 {
            if (7 - start) % step == 0 && (step > 1 || start > 1) {
                ranges.push(Range { start: 0, end: 0, step: 0 });
                if start == 7 {
                    continue;
                }
            }
            end = 6;
        }
        ranges.push(Range { start, end: if start == end { 0 } else { end }, step: if step == 1 { 0 } else { step } });
    }
    Ok(ranges)
}

/// One value: an integer in `[min, max]`, or (for months and weekdays) a name prefix.
fn parse_value(s: &str, min: i32, max: i32, kind: FieldKind) -> Option<i32> {
    let names: &[&str] = match kind {
        FieldKind::Month if s.len() >= 3 => &MONTH_NAMES,
        FieldKind::DayOfWeek if s.len() >= 2 => &WEEKDAY_NAMES,
        _ => &[],
    };
    let lower = s.to_lowercase();
    let named = names.iter().position(|n| n.starts_with(&lower)).map(|i| {
        // Months count from 1, weekdays from 0 (Sunday).
        if kind == FieldKind::Month {
            i as i32 + 1
        } else {
            i as i32
        }
    });
    let value = match named {
        Some(v) => v,
        None => go_atoi(s).ok()?,
    };
    (min..=max).contains(&value).then_some(value)
}

/// Go's `strconv.Atoi` on 64-bit, with its error texts (they reach users through steps).
fn go_atoi(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s)));
    }
    let v: i64 = s.parse().map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))?;
    // Anything beyond i32 is out of every field's range anyway; saturate rather than wrap.
    Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

/// Go's `%q` for the plain strings that appear in these errors.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

struct ParsedCron {
    /// `TZ=`/`CRON_TZ=` zone, or empty when the cron names none.
    zone: String,
    kind: CronKind,
}

enum CronKind {
    Calendar(StructuredCalendarSpec),
    Interval(IntervalSpec),
}

/// Parses `[CRON_TZ=zone|TZ=zone] fields [# comment]`, `@hourly`-style names or
/// `@every <duration>[/<phase>]`.
fn parse_cron(cron: &str) -> Result<ParsedCron, String> {
    let mut c = cron.trim();
    let mut zone = "";
    if c.starts_with("TZ=") || c.starts_with("CRON_TZ=") {
        let (tz, rest) = c.split_once(' ').ok_or("CronString has time zone but missing fields")?;
        zone = tz.split_once('=').map_or("", |(_, z)| z);
        c = rest;
    }
    let (fields, comment) = c.split_once('#').unwrap_or((c, ""));
    let (c, comment) = (fields.trim(), comment.trim());

    if c.starts_with("@every") {
        // Temporal drops the cron's zone for intervals (they are zone-free anyway), which
        // matters for the "all crons share one zone" check.
        let interval = parse_every(c)?;
        return Ok(ParsedCron { zone: String::new(), kind: CronKind::Interval(interval) });
    }
    let c = match c {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        c => c,
    };
    let toks: Vec<&str> = c.split_whitespace().take(8).collect();
    let s = |i: usize| toks[i].to_string();
    let mut cal = CalendarSpec { comment: comment.to_string(), ..Default::default() };
    match toks.len() {
        5 | 6 => {
            (cal.minute, cal.hour, cal.day_of_month, cal.month, cal.day_of_week) = (s(0), s(1), s(2), s(3), s(4));
            if toks.len() == 6 {
                cal.year = s(5);
            }
        }
        7 => {
            (cal.second, cal.minute, cal.hour, cal.day_of_month, cal.month) = (s(0), s(1), s(2), s(3), s(4));
            (cal.day_of_week, cal.year) = (s(5), s(6));
        }
        _ => return Err("CronString does not have 5-7 fields".into()),
    }
    Ok(ParsedCron { zone: zone.to_string(), kind: CronKind::Calendar(parse_calendar(&cal)?) })
}

/// `@every 14h/3h`: everything after the first space is `interval[/phase]`.
fn parse_every(c: &str) -> Result<IntervalSpec, String> {
    let (_, rest) = c.split_once(' ').ok_or("CronString does not have interval after @every")?;
    let (every, phase) = rest.split_once('/').unwrap_or((rest, ""));
    let every = parse_temporal_duration(every)?;
    let phase = if phase.is_empty() { None } else { Some(parse_temporal_duration(phase)?) };
    Ok(IntervalSpec { interval: Some(duration_from_nanos(every)), phase: phase.map(duration_from_nanos) })
}

/// Temporal's `timestamp.ParseDuration`: Go's `time.ParseDuration` plus a `d` unit (24 h),
/// done as Temporal does it, by rewriting each `<number>d` to `<24*number>h` first.
fn parse_temporal_duration(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let digits_end = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        // Match `(\d+(\.\d*)?|(\.\d+))d` at i.
        let end = if b[i].is_ascii_digit() {
            let j = digits_end(i);
            let k = if b.get(j) == Some(&b'.') { digits_end(j + 1) } else { j };
            (b.get(k) == Some(&b'd')).then_some(k)
        } else if b[i] == b'.' {
            let k = digits_end(i + 1);
            (k > i + 1 && b.get(k) == Some(&b'd')).then_some(k)
        } else {
            None
        };
        match end {
            Some(k) => {
                out.push_str(&s[copied..i]);
                match s[i..k].parse::<f64>() {
                    Ok(days) => out.push_str(&format!("{:.6}h", 24.0 * days)),
                    Err(_) => out.push_str(&s[i..=k]),
                }
                i = k + 1;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[copied..]);
    go_parse_duration(&out)
}

/// Go's `time.ParseDuration`, nanoseconds, with its error texts (also what visibility
/// queries use for ExecutionDuration).
pub(crate) fn go_parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix(['-', '+']) {
        neg = s.starts_with('-');
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let mut i = 0;
        let mut v: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b[i] - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        // Fraction: keep digits while they fit, like Go's leadingFraction.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let mut overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                post = true;
                if !overflow {
                    match f.checked_mul(10).map(|x| x + u64::from(b[i] - b'0')) {
                        Some(y) if f <= (LIMIT - 1) / 10 && y <= LIMIT => {
                            f = y;
                            scale *= 10.0;
                        }
                        _ => overflow = true,
                    }
                }
                i += 1;
            }
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or dot.
        let unit_end = s[i..].find(|c: char| c == '.' || c.is_ascii_digit()).map_or(s.len(), |j| i + j);
        if unit_end == i {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit_name = &s[i..unit_end];
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!("time: unknown unit {} in duration {}", go_quote(unit_name), go_quote(orig)));
            }
        };
        s = &s[unit_end..];
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

// ---------------------------------------------------------------------------------------------
// Time zones, the way Go's time package uses them
// ---------------------------------------------------------------------------------------------

/// Loads the spec's zone the way Go's `time.LoadLocation` would name its errors.
fn load_zone(spec: &ScheduleSpec) -> Result<Tz, String> {
    if !spec.timezone_data.is_empty() {
        return Err("timezone_data is not supported; use timezone_name".into());
    }
    let name = spec.timezone_name.as_str();
    match name {
        // Go: "" and "UTC" are UTC; "Local" is the server's zone, which for a server is UTC.
        "" | "UTC" | "Local" => return Ok(Tz::UTC),
        _ => {}
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return Err("time: invalid location name".into());
    }
    name.parse::<Tz>().map_err(|_| format!("unknown time zone {name}"))
}

/// Local wall-clock fields of an instant.
#[derive(Clone, Copy, Debug)]
struct Local {
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    second: i32,
    /// 0 = Sunday.
    weekday: i32,
}

fn local_fields(tz: Tz, unix_s: i64) -> Option<Local> {
    let t = DateTime::from_timestamp(unix_s, 0)?.with_timezone(&tz);
    Some(Local {
        year: t.year(),
        month: t.month() as i32,
        day: t.day() as i32,
        hour: t.hour() as i32,
        minute: t.minute() as i32,
        second: t.second() as i32,
        weekday: t.weekday().num_days_from_sunday() as i32,
    })
}

fn utc_offset_s(tz: Tz, unix_s: i64) -> i64 {
    DateTime::from_timestamp(unix_s, 0)
        .map_or(0, |t| i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()))
}

/// Go's `time.Date(y, mo, d, h, m, s, 0, tz).Unix()`, including its field normalisation
/// (hour 24 is the next day) and its choice for wall times that don't exist or exist twice:
/// take the offset in force at the wall time read as UTC, and if the resulting instant falls
/// in a different zone period, use that period's offset instead. For a skipped time this lands
/// an hour early (so the hour differs, which the calendar search uses to skip it); for a
/// repeated time it picks the first occurrence west of Greenwich and the second east of it
/// (e.g. Berlin), a quirk the reference server shows in its matching times.
fn go_date(tz: Tz, y: i32, mo: i32, d: i32, h: i32, m: i32, s: i32) -> Option<i64> {
    let days = NaiveDate::from_ymd_opt(y, mo as u32, 1)?.and_hms_opt(0, 0, 0)?.and_utc().timestamp() / 86_400
        + i64::from(d - 1);
    let wall = days * 86_400 + i64::from(h) * 3_600 + i64::from(m) * 60 + i64::from(s);
    let guess = utc_offset_s(tz, wall);
    Some(wall - utc_offset_s(tz, wall - guess))
}

fn days_in_month(month: i32, year: i32) -> i32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled calendars
// ---------------------------------------------------------------------------------------------

/// Set of small values (0..=63) as a bit mask, like Temporal's `makeBitMatcher`.
#[derive(Clone, Copy, Debug, Default)]
struct Bits(u64);

impl Bits {
    fn from_ranges(ranges: &[Range]) -> Self {
        let mut bits = 0u64;
        for_each_value(ranges, 0, 63, |v| bits |= 1 << v);
        Bits(bits)
    }
    fn has(self, v: i32) -> bool {
        (0..64).contains(&v) && self.0 & (1 << v) != 0
    }
}

/// Calls `f` for each value the ranges cover within `[lo, hi]`. Steps below 1 count as 1 and
/// values are clipped to `[lo, hi]`: exclusions are not validated, and Temporal would loop
/// forever on a negative step or for billions of steps on a huge range.
fn for_each_value(ranges: &[Range], lo: i64, hi: i64, mut f: impl FnMut(i64)) {
    for r in ranges {
        let step = i64::from(r.step.max(1));
        let mut v = i64::from(r.start);
        let end = i64::from(r.end.max(r.start)).min(hi);
        if v < lo {
            v += (lo - v + step - 1) / step * step;
        }
        while v <= end {
            f(v);
            v += step;
        }
    }
}

/// One structured calendar, ready to match. Years are kept as a sorted list (empty = every
/// year) because they don't fit a 64-bit mask.
#[derive(Clone, Debug)]
struct CompiledCalendar {
    tz: Tz,
    years: Option<Vec<i32>>,
    month: Bits,
    day_of_month: Bits,
    day_of_week: Bits,
    hour: Bits,
    minute: Bits,
    second: Bits,
}

impl CompiledCalendar {
    fn new(cal: &StructuredCalendarSpec, tz: Tz) -> Self {
        let years = (!cal.year.is_empty()).then(|| {
            let mut years = Vec::new();
            // Years outside this window can never be asked about.
            for_each_value(&cal.year, 1, 9999, |y| years.push(y as i32));
            years.sort_unstable();
            years.dedup();
            years
        });
        CompiledCalendar {
            tz,
            years,
            month: Bits::from_ranges(&cal.month),
            day_of_month: Bits::from_ranges(&cal.day_of_month),
            day_of_week: Bits::from_ranges(&cal.day_of_week),
            hour: Bits::from_ranges(&cal.hour),
            minute: Bits::from_ranges(&cal.minute),
            second: Bits::from_ranges(&cal.second),
        }
    }

    /// A field with no values can never match. Temporal would still walk every second to the
    /// year 2100 to find that out (billions of steps for an empty `second` list).
    fn never_matches(&self) -> bool {
        let fields = [self.month, self.day_of_month, self.day_of_week, self.hour, self.minute, self.second];
        fields.iter().any(|b| b.0 == 0) || self.years.as_ref().is_some_and(|ys| ys.is_empty())
    }

    fn year(&self, y: i32) -> bool {
        self.years.as_ref().is_none_or(|ys| ys.binary_search(&y).is_ok())
    }

    /// Whether the instant's wall-clock fields in the zone all match.
    fn matches(&self, unix_s: i64) -> bool {
        let Some(l) = local_fields(self.tz, unix_s) else { return false };
        self.year(l.year)
            && self.month.has(l.month)
            && self.day_of_month.has(l.day)
            && self.day_of_week.has(l.weekday)
            && self.hour.has(l.hour)
            && self.minute.has(l.minute)
            && self.second.has(l.second)
    }

    /// The first matching instant strictly after `after_s`, found field by field from the
    /// year down, as Temporal's `compiledCalendar.next` does — including its handling of DST:
    /// a wall time skipped by spring-forward is skipped, and when the clock falls back the
    /// repeated hour is visited a second time (tracked by `dst_offset_s`, which is added to
    /// the first-occurrence instant Go's `time.Date` returns).
    fn next(&self, after_s: i64) -> Option<i64> {
        if self.never_matches() {
            return None;
        }
        let tz = self.tz;
        let date = |y, mo, d, h, m, s| go_date(tz, y, mo, d, h, m, s);
        let l = local_fields(tz, after_s)?;
        let (mut y, mut mo, mut d) = (l.year, l.month, l.day);
        let (mut h, mut m, mut s) = (l.hour, l.minute, l.second);
        // An hour ago had the same wall hour: we are in the second copy of a repeated hour.
        let mut dst_offset_s = if local_fields(tz, after_s - 3_600)?.hour == h { 3_600 } else { 0 };

        s += 1;
        'outer: loop {
            // Carry overflowing fields upwards.
            if s >= 60 {
                (m, s) = (m + 1, 0);
            }
            if m >= 60 {
                let prev = date(y, mo, d, h, 0, 0)?;
                (h, m) = (h + 1, 0);
                let next = date(y, mo, d, h, 0, 0)?;
                // Two hours between consecutive wall hours: we just stepped over a repeated
                // hour, so go back and walk it again, one hour later in real time.
                if dst_offset_s == 0 && next - prev > 3_600 {
                    h -= 1;
                    dst_offset_s = 3_600;
                } else {
                    dst_offset_s = 0;
                }
            }
            if h >= 24 {
                (d, h) = (d + 1, 0);
            }
            if d > days_in_month(mo, y) {
                (mo, d) = (mo + 1, 1);
            }
            if mo > 12 {
                (y, mo) = (y + 1, 1);
            }
            if y > MAX_CALENDAR_YEAR {
                return None;
            }

            // Match from the outside in; a mismatch resets everything below it.
            if !self.year(y) {
                (y, mo, d, h, m, s) = (y + 1, 1, 1, 0, 0, 0);
                dst_offset_s = 0;
                continue 'outer;
            }
            while !self.month.has(mo) {
                (mo, d, h, m, s) = (mo + 1, 1, 0, 0, 0);
                dst_offset_s = 0;
                if mo > 12 {
                    continue 'outer;
                }
            }
            loop {
                let weekday = local_fields(tz, date(y, mo, d, h, m, s)?)?.weekday;
                if self.day_of_month.has(d) && self.day_of_week.has(weekday) {
                    break;
                }
                (d, h, m, s) = (d + 1, 0, 0, 0);
                dst_offset_s = 0;
                if d > days_in_month(mo, y) {
                    continue 'outer;
                }
            }
            while !self.hour.has(h) {
                (h, m, s) = (h + 1, 0, 0);
                dst_offset_s = 0;
                if h >= 24 {
                    continue 'outer;
                }
            }
            while !self.minute.has(m) {
                (m, s) = (m + 1, 0);
                if m >= 60 {
                    continue 'outer;
                }
            }
            while !self.second.has(s) {
                s += 1;
                if s >= 60 {
                    continue 'outer;
                }
            }
            let found = date(y, mo, d, h, m, s)?;
            // A wall time skipped by a DST jump comes back with a different hour.
            if local_fields(tz, found)?.hour != h {
                (h, m, s) = (h + 1, 0, 0);
                continue 'outer;
            }
            return Some(found + dst_offset_s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled spec
// ---------------------------------------------------------------------------------------------

/// A validated spec ready to answer "when next?".
#[derive(Clone, Debug)]
pub struct CompiledSpec {
    canonical: ScheduleSpec,
    calendars: Vec<CompiledCalendar>,
    excludes: Vec<CompiledCalendar>,
    /// `(every_s, phase_s)` per interval, whole seconds as Temporal uses them.
    intervals: Vec<(i64, i64)>,
    /// Searches never start before `start_time - 1 s` (a missing start time is the epoch, as
    /// Go's `AsTime` of nil), so the first second of the range can match.
    floor_s: i64,
    /// Nominal times after this second are past `end_time`.
    end_s: Option<i64>,
    jitter_nanos: i64,
}

/// A nominal time and the time after jitter, both Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextTime {
    pub nominal_ms: i64,
    pub next_ms: i64,
}

/// First second past the last representable calendar year, in UTC.
fn end_of_calendar_s() -> i64 {
    NaiveDate::from_ymd_opt(MAX_CALENDAR_YEAR + 1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp())
}

impl CompiledSpec {
    /// Compiles a spec (canonicalising it first, so raw input is fine too). Errors are as
    /// [`canonicalize`] reports them, including an unknown time zone.
    pub fn new(spec: &ScheduleSpec) -> Result<Self, String> {
        let canonical = canonicalize(spec)?;
        let tz = load_zone(&canonical).map_err(|e| format!("{INVALID_SPEC_PREFIX}{e}"))?;
        let compile =
            |cals: &[StructuredCalendarSpec]| cals.iter().map(|c| CompiledCalendar::new(c, tz)).collect::<Vec<_>>();
        let intervals = canonical
            .interval
            .iter()
            .map(|iv| {
                let secs = |d: Option<&Duration>| duration_nanos(d) / 1_000_000_000;
                (secs(iv.interval.as_ref()).max(1), secs(iv.phase.as_ref()).max(0))
            })
            .collect();
        let start_s = canonical.start_time.as_ref().map_or(0, timestamp_floor_s);
        Ok(CompiledSpec {
            calendars: compile(&canonical.structured_calendar),
            excludes: compile(&canonical.exclude_structured_calendar),
            intervals,
            floor_s: start_s.saturating_sub(1),
            end_s: canonical.end_time.as_ref().map(timestamp_floor_s),
            jitter_nanos: duration_nanos(canonical.jitter.as_ref()),
            canonical,
        })
    }

    /// The canonical (Describe) form of the spec this was compiled from.
    pub fn canonical(&self) -> &ScheduleSpec {
        &self.canonical
    }

    /// The next nominal (pre-jitter) time strictly after `t_ms`: the earliest time matching a
    /// calendar or interval that no exclusion matches, searching from no earlier than just
    /// before `start_time`; `None` if it would be past `end_time` or the year 2100.
    pub fn next_after(&self, t_ms: i64) -> Option<i64> {
        let mut after_s = t_ms.div_euclid(1000).max(self.floor_s);
        for _ in 0..MAX_EXCLUDED_CANDIDATES {
            let nominal_s = self.raw_next_s(after_s)?;
            if self.end_s.is_some_and(|end| nominal_s > end) || nominal_s >= end_of_calendar_s() {
                return None;
            }
            if !self.excludes.iter().any(|ex| ex.matches(nominal_s)) {
                return Some(nominal_s * 1000);
            }
            after_s = nominal_s;
        }
        None
    }

    /// The next time matched by any calendar or interval after `t_ms`, ignoring exclusions and
    /// the start/end bounds. Temporal caps jitter with this (not with the next *allowed*
    /// time), so pass it as `following_ms` to [`CompiledSpec::jittered`].
    pub fn raw_next_after(&self, t_ms: i64) -> Option<i64> {
        self.raw_next_s(t_ms.div_euclid(1000)).map(|s| s * 1000)
    }

    fn raw_next_s(&self, after_s: i64) -> Option<i64> {
        let calendars = self.calendars.iter().filter_map(|c| c.next(after_s));
        // Go's integer division truncates toward zero; keep that for times before the phase.
        let intervals = self.intervals.iter().map(|&(every, phase)| ((after_s - phase) / every + 1) * every + phase);
        calendars.chain(intervals).min()
    }

    /// `nominal_ms` plus Temporal's deterministic jitter: a farmhash of the nominal time and
    /// the seed `"<namespace_id>-<schedule_id>"` picks a point in `[0, max)`, where `max` is
    /// the spec's jitter capped at the gap to `following_ms` (the next raw matching time), so
    /// jitter never reorders runs. Note: Temporal seeds with the namespace *id*, not its name.
    pub fn jittered(&self, nominal_ms: i64, following_ms: Option<i64>, namespace_id: &str, schedule_id: &str) -> i64 {
        let mut max_nanos = self.jitter_nanos;
        if let Some(following) = following_ms {
            max_nanos = max_nanos.min(following.saturating_sub(nominal_ms).saturating_mul(1_000_000));
        }
        let max_ms = (max_nanos.max(0) / 1_000_000).min(i64::from(u32::MAX)) as u64;
        if max_ms == 0 {
            return nominal_ms;
        }
        // The hash input is Go's `time.Time.MarshalBinary` of the nominal time in UTC
        // (version 1, seconds since year 1, nanoseconds, offset -1 meaning UTC) + the seed.
        const UNIX_TO_YEAR_ONE_S: i64 = 62_135_596_800;
        let secs = nominal_ms.div_euclid(1000) + UNIX_TO_YEAR_ONE_S;
        let nanos = (nominal_ms.rem_euclid(1000) * 1_000_000) as i32;
        let mut bin = Vec::with_capacity(15 + namespace_id.len() + 1 + schedule_id.len());
        bin.push(1u8);
        bin.extend_from_slice(&secs.to_be_bytes());
        bin.extend_from_slice(&nanos.to_be_bytes());
        bin.extend_from_slice(&(-1i16).to_be_bytes());
        bin.extend_from_slice(namespace_id.as_bytes());
        bin.push(b'-');
        bin.extend_from_slice(schedule_id.as_bytes());
        let fingerprint = u64::from(farmhash::fingerprint32(&bin));
        nominal_ms + ((fingerprint * max_ms) >> 32) as i64
    }

    /// Temporal's `GetNextTime`: the next nominal time after `after_ms` and its jittered time.
    pub fn next_time(&self, after_ms: i64, namespace_id: &str, schedule_id: &str) -> Option<NextTime> {
        let nominal_ms = self.next_after(after_ms)?;
        let following_ms = self.raw_next_after(nominal_ms);
        let next_ms = self.jittered(nominal_ms, following_ms, namespace_id, schedule_id);
        Some(NextTime { nominal_ms, next_ms })
    }

    /// ListScheduleMatchingTimes: jittered times in `(start_ms, end_ms]`, at most
    /// [`MAX_LIST_MATCHING_TIMES`]. Like Temporal, each search continues from the previous
    /// *jittered* time, so with jitter the list is not simply the nominal times shifted.
    pub fn matching_times(&self, start_ms: i64, end_ms: i64, namespace_id: &str, schedule_id: &str) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = start_ms;
        while out.len() < MAX_LIST_MATCHING_TIMES {
            match self.next_time(t, namespace_id, schedule_id) {
                Some(next) if next.next_ms <= end_ms => {
                    out.push(next.next_ms);
                    t = next.next_ms;
                }
                _ => break,
            }
        }
        out
    }
}

/// Whole seconds of a timestamp, rounding down (nanos are non-negative in valid timestamps).
fn timestamp_floor_s(t: &Timestamp) -> i64 {
    t.seconds + i64::from(t.nanos).div_euclid(1_000_000_000)
}

// ---------------------------------------------------------------------------------------------
// farmhash
// ---------------------------------------------------------------------------------------------

/// farmhash `Fingerprint32` (the "mk" variant), as in github.com/dgryski/go-farm, which
/// Temporal uses for jitter. Only a stable 32-bit hash is needed, but it must be *this* one to
/// reproduce Temporal's jittered times.
mod farmhash {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    fn fetch(s: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]])
    }

    fn fmix(mut h: u32) -> u32 {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }

    fn mur(a: u32, h: u32) -> u32 {
        let a = a.wrapping_mul(C1).rotate_right(17).wrapping_mul(C2);
        (h ^ a).rotate_right(19).wrapping_mul(5).wrapping_add(0xe654_6b64)
    }

    fn len_0_to_4(s: &[u8]) -> u32 {
        let (mut b, mut c) = (0u32, 9u32);
        for &byte in s {
            // Bytes are read as signed, as in the C++ original.
            b = b.wrapping_mul(C1).wrapping_add(byte as i8 as i32 as u32);
            c ^= b;
        }
        fmix(mur(b, mur(s.len() as u32, c)))
    }

    fn len_5_to_12(s: &[u8]) -> u32 {
        let n = s.len();
        let mut a = n as u32;
        let mut b = (n as u32).wrapping_mul(5);
        let mut c = 9u32;
        let d = b;
        a = a.wrapping_add(fetch(s, 0));
        b = b.wrapping_add(fetch(s, n - 4));
        c = c.wrapping_add(fetch(s, (n >> 1) & 4));
        fmix(mur(c, mur(b, mur(a, d))))
    }

    fn len_13_to_24(s: &[u8]) -> u32 {
        let n = s.len();
        let mut a = fetch(s, (n >> 1) - 4);
        let b = fetch(s, 4);
        let c = fetch(s, n - 8);
        let d = fetch(s, n >> 1);
        let e = fetch(s, 0);
        let f = fetch(s, n - 4);
        let mut h = d.wrapping_mul(C1).wrapping_add(n as u32);
        a = a.rotate_right(12).wrapping_add(f);
        h = mur(c, h).wrapping_add(a);
        a = a.rotate_right(3).wrapping_add(c);
        h = mur(e, h).wrapping_add(a);
        a = a.wrapping_add(f).rotate_right(12).wrapping_add(d);
        h = mur(b, h).wrapping_add(a);
        fmix(h)
    }

    pub(super) fn fingerprint32(s: &[u8]) -> u32 {
        let n = s.len();
        match n {
            0..=4 => return len_0_to_4(s),
            5..=12 => return len_5_to_12(s),
            13..=24 => return len_13_to_24(s),
            _ => {}
        }
        let step = |x: u32| x.wrapping_mul(C1).rotate_right(17).wrapping_mul(C2);
        let mix = |h: u32, x: u32| (h ^ x).rotate_right(19).wrapping_mul(5).wrapping_add(0xe654_6b64);
        let mut h = n as u32;
        let mut g = C1.wrapping_mul(n as u32);
        let mut f = g;
        let a0 = step(fetch(s, n - 4));
        let a1 = step(fetch(s, n - 8));
        let a2 = step(fetch(s, n - 16));
        let a3 = step(fetch(s, n - 12));
        let a4 = step(fetch(s, n - 20));
        h = mix(mix(h, a0), a2);
        g = mix(mix(g, a1), a3);
        f = f.wrapping_add(a4).rotate_right(19).wrapping_add(113);
        let mut rest = s;
        while rest.len() > 20 {
            let (a, b, c) = (fetch(rest, 0), fetch(rest, 4), fetch(rest, 8));
            let (d, e) = (fetch(rest, 12), fetch(rest, 16));
            h = h.wrapping_add(a);
            g = g.wrapping_add(b);
            f = f.wrapping_add(c);
            h = mur(d, h).wrapping_add(e);
            g = mur(c, g).wrapping_add(a);
            f = mur(b.wrapping_add(e.wrapping_mul(C1)), f).wrapping_add(d);
            f = f.wrapping_add(g);
            g = g.wrapping_add(f);
            rest = &rest[20..];
        }
        g = g.rotate_right(11).wrapping_mul(C1).rotate_right(17).wrapping_mul(C1);
        f = f.rotate_right(11).wrapping_mul(C1).rotate_right(17).wrapping_mul(C1);
        h = h.wrapping_add(g).rotate_right(19).wrapping_mul(5).wrapping_add(0xe654_6b64);
        h = h.rotate_right(17).wrapping_mul(C1);
        h = h.wrapping_add(f).rotate_right(19).wrapping_mul(5).wrapping_add(0xe654_6b64);
        h.rotate_right(17).wrapping_mul(C1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Namespace id of `default` on the reference server the expected values were read from
    /// (Temporal server 1.32.0 via CLI 1.9.1, `ListScheduleMatchingTimes` / `DescribeSchedule`).
    /// Jitter is seeded with it.
    const REF_NAMESPACE_ID: &str = "01a23427-0cbb-7a55-884d-1d3860af11a5";

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
    }

    /// Formats like the server's JSON: whole seconds bare, otherwise milliseconds.
    fn fmt(t_ms: i64) -> String {
        let t = DateTime::from_timestamp_millis(t_ms).unwrap();
        if t_ms % 1000 == 0 {
            t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
    }

    fn r(start: i32, end: i32, step: i32) -> Range {
        Range { start, end, step }
    }

    fn crons(crons: &[&str]) -> ScheduleSpec {
        ScheduleSpec { cron_string: crons.iter().map(|c| c.to_string()).collect(), ..Default::default() }
    }

    fn secs(seconds: i64) -> Option<Duration> {
        Some(Duration { seconds, nanos: 0 })
    }

    fn ts(rfc3339: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(rfc3339).unwrap();
        Some(Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 })
    }

    fn interval(every_s: i64, phase_s: i64) -> IntervalSpec {
        IntervalSpec { interval: secs(every_s), phase: (phase_s != 0).then(|| secs(phase_s)).flatten() }
    }

    /// What ListScheduleMatchingTimes returns for `spec` on schedule `id`.
    fn matching(spec: &ScheduleSpec, id: &str, start: &str, end: &str) -> Vec<String> {
        let compiled = CompiledSpec::new(spec).unwrap();
        compiled.matching_times(ms(start), ms(end), REF_NAMESPACE_ID, id).into_iter().map(fmt).collect()
    }

    fn err(spec: &ScheduleSpec) -> String {
        canonicalize(spec).unwrap_err()
    }

    /// The default fields of a parsed calendar: all days, months and weekdays, midnight.
    fn daily(comment: &str) -> StructuredCalendarSpec {
        StructuredCalendarSpec {
            second: vec![r(0, 0, 1)],
            minute: vec![r(0, 0, 1)],
            hour: vec![r(0, 0, 1)],
            day_of_month: vec![r(1, 31, 1)],
            month: vec![r(1, 12, 1)],
            year: vec![],
            day_of_week: vec![r(0, 6, 1)],
            comment: comment.into(),
        }
    }

    // --- canonical forms (all checked against DescribeSchedule) -----------------------------

    #[test]
    fn reference_cron_weekly_canonical_form() {
        let spec = canonicalize(&crons(&["0 12 * * MON"])).unwrap();
        let expected = StructuredCalendarSpec { hour: vec![r(12, 12, 1)], day_of_week: vec![r(1, 1, 1)], ..daily("") };
        assert_eq!(spec.structured_calendar, vec![expected]);
        assert!(spec.cron_string.is_empty() && spec.calendar.is_empty() && spec.interval.is_empty());
        assert_eq!(
            matching(&spec, "p1", "2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"),
            ["2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z", "2026-01-19T12:00:00Z"]
        );
    }

    #[test]
    fn reference_seven_field_cron_with_names_steps_and_comment() {
        let spec = canonicalize(&crons(&["30 15 10 1-5/2 JAN,mar * 2026-2027 # my comment"])).unwrap();
        let expected = StructuredCalendarSpec {
            second: vec![r(30, 30, 1)],
            minute: vec![r(15, 15, 1)],
            hour: vec![r(10, 10, 1)],
            day_of_month: vec![r(1, 5, 2)],
            month: vec![r(1, 1, 1), r(3, 3, 1)],
            year: vec![r(2026, 2027, 1)],
            ..daily("my comment")
        };
        assert_eq!(spec.structured_calendar, vec![expected]);
        assert_eq!(
            matching(&spec, "c2", "2026-01-01T00:00:00Z", "2027-12-31T00:00:00Z"),
            [
                "2026-01-01T10:15:30Z",
                "2026-01-03T10:15:30Z",
                "2026-01-05T10:15:30Z",
                "2026-03-01T10:15:30Z",
                "2026-03-03T10:15:30Z",
                "2026-03-05T10:15:30Z",
                "2027-01-01T10:15:30Z",
                "2027-01-03T10:15:30Z",
                "2027-01-05T10:15:30Z",
                "2027-03-01T10:15:30Z",
                "2027-03-03T10:15:30Z",
                "2027-03-05T10:15:30Z",
            ]
        );
    }

    #[test]
    fn six_field_cron_adds_year_and_predefined_names_expand() {
        let spec = canonicalize(&crons(&["0 0 1 1 * 2030"])).unwrap();
        assert_eq!(spec.structured_calendar[0].year, vec![r(2030, 2030, 1)]);
        for (name, expanded) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            assert_eq!(canonicalize(&crons(&[name])), canonicalize(&crons(&[expanded])), "{name}");
        }
    }

    #[test]
    fn reference_hourly_cron_plus_interval_with_phase() {
        let mut spec = crons(&["@hourly #c"]);
        spec.interval = vec![interval(5400, 900)];
        let spec = canonicalize(&spec).unwrap();
        let hourly = StructuredCalendarSpec { hour: vec![r(0, 23, 1)], ..daily("c") };
        assert_eq!(spec.structured_calendar, vec![hourly]);
        assert_eq!(spec.interval, vec![interval(5400, 900)]);
        assert_eq!(
            matching(&spec, "c3", "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z"),
            [
                "2026-01-01T00:15:00Z",
                "2026-01-01T01:00:00Z",
                "2026-01-01T01:45:00Z",
                "2026-01-01T02:00:00Z",
                "2026-01-01T03:00:00Z",
                "2026-01-01T03:15:00Z",
                "2026-01-01T04:00:00Z",
                "2026-01-01T04:45:00Z",
                "2026-01-01T05:00:00Z",
                "2026-01-01T06:00:00Z",
            ]
        );
    }

    #[test]
    fn reference_every_cron_becomes_interval() {
        let spec = canonicalize(&crons(&["@every 90m/15m", "@weekly"])).unwrap();
        assert_eq!(spec.interval, vec![interval(5400, 900)]);
        assert_eq!(spec.structured_calendar[0].day_of_week, vec![r(0, 0, 1)]);
        // The cron's zone is dropped for `@every` (intervals don't need one).
        let spec = canonicalize(&crons(&["TZ=America/New_York @every 1d/5h # daily at 5 utc"])).unwrap();
        assert_eq!(spec.interval, vec![interval(86_400, 18_000)]);
        assert_eq!(spec.timezone_name, "");
        assert_eq!(
            matching(&spec, "f5", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
            ["2026-01-01T05:00:00Z", "2026-01-02T05:00:00Z"]
        );
    }

    #[test]
    fn reference_calendar_names_steps_and_sunday_seven() {
        let spec = ScheduleSpec {
            calendar: vec![
                CalendarSpec {
                    day_of_week: "mon-FRI".into(),
                    hour: "*/6".into(),
                    month: "jan/3".into(),
                    comment: "x".into(),
                    ..Default::default()
                },
                CalendarSpec {
                    second: "5/20".into(),
                    minute: "1,2".into(),
                    day_of_week: "5-7".into(),
                    year: "2026".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let spec = canonicalize(&spec).unwrap();
        let first = StructuredCalendarSpec {
            hour: vec![r(0, 23, 6)],
            month: vec![r(1, 12, 3)],
            day_of_week: vec![r(1, 5, 1)],
            ..daily("x")
        };
        let second = StructuredCalendarSpec {
            second: vec![r(5, 59, 20)],
            minute: vec![r(1, 1, 1), r(2, 2, 1)],
            year: vec![r(2026, 2026, 1)],
            day_of_week: vec![r(0, 0, 1), r(5, 6, 1)],
            ..daily("")
        };
        assert_eq!(spec.structured_calendar, vec![first, second]);
        assert_eq!(
            matching(&spec, "c5", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
            [
                "2026-01-01T06:00:00Z",
                "2026-01-01T12:00:00Z",
                "2026-01-01T18:00:00Z",
                "2026-01-02T00:00:00Z",
                "2026-01-02T00:01:05Z",
                "2026-01-02T00:01:25Z",
                "2026-01-02T00:01:45Z",
                "2026-01-02T00:02:05Z",
                "2026-01-02T00:02:25Z",
                "2026-01-02T00:02:45Z",
                "2026-01-02T06:00:00Z",
                "2026-01-02T12:00:00Z",
                "2026-01-02T18:00:00Z",
            ]
        );
    }

    #[test]
    fn reference_day_of_week_seven_is_sunday() {
        let dow = |s: &str| {
            let spec = ScheduleSpec {
                calendar: vec![CalendarSpec { day_of_week: s.into(), ..Default::default() }],
                ..Default::default()
            };
            canonicalize(&spec).unwrap().structured_calendar[0].day_of_week.clone()
        };
        assert_eq!(dow("1-7/2"), [r(0, 0, 1), r(1, 6, 2)]);
        assert_eq!(dow("3-7"), [r(0, 0, 1), r(3, 6, 1)]);
        assert_eq!(dow("7"), [r(0, 0, 1)]);
        assert_eq!(dow("0-7"), [r(0, 6, 1)]);
        assert_eq!(dow("3-7/2"), [r(0, 0, 1), r(3, 6, 2)]);
        assert_eq!(dow("*/2"), [r(0, 6, 2)]);
        assert_eq!(dow("SUN,sat,Tu"), [r(0, 0, 1), r(6, 6, 1), r(2, 2, 1)]);
    }

    #[test]
    fn reference_structured_input_is_cleaned_not_defaulted() {
        let spec = ScheduleSpec {
            structured_calendar: vec![StructuredCalendarSpec {
                hour: vec![r(5, 0, 0), r(7, 0, 0), r(9, 15, 3)],
                year: vec![r(2026, 0, 0)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let spec = canonicalize(&spec).unwrap();
        let expected = StructuredCalendarSpec {
            hour: vec![r(5, 5, 1), r(7, 7, 1), r(9, 15, 3)],
            year: vec![r(2026, 2026, 1)],
            ..Default::default()
        };
        assert_eq!(spec.structured_calendar, vec![expected]);
        // Empty second/minute/... lists match nothing.
        assert!(matching(&spec, "e3", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").is_empty());
        // Canonicalising is idempotent.
        assert_eq!(canonicalize(&spec).unwrap(), spec);
    }

    // --- errors (texts as the reference server returns them) --------------------------------

    #[test]
    fn reference_errors() {
        let cal = |c: CalendarSpec| ScheduleSpec { calendar: vec![c], ..Default::default() };
        let cases: Vec<(ScheduleSpec, &str)> = vec![
            (crons(&["1 2 3"]), "CronString does not have 5-7 fields"),
            (crons(&["1 2 3 4 5 6 7 8"]), "CronString does not have 5-7 fields"),
            (crons(&["61 * * * *"]), "Minute is not in range [0-59]"),
            (crons(&["TZ=UTC 0 * * * *", "0 * * * *"]), "conflicting timezone names"),
            (
                ScheduleSpec { timezone_name: "UTC".into(), ..crons(&["TZ=Europe/Berlin 0 * * * *"]) },
                "conflicting timezone names",
            ),
            (
                ScheduleSpec {
                    interval: vec![IntervalSpec {
                        interval: Some(Duration { seconds: 0, nanos: 500_000_000 }),
                        phase: None,
                    }],
                    ..Default::default()
                },
                "interval is too small",
            ),
            (
                ScheduleSpec { interval: vec![interval(60, 60)], ..Default::default() },
                "phase cannot be greater than Interval",
            ),
            (ScheduleSpec { timezone_name: "Mars/Base".into(), ..Default::default() }, "unknown time zone Mars/Base"),
            (
                ScheduleSpec { timezone_name: "america/new_york".into(), ..Default::default() },
                "unknown time zone america/new_york",
            ),
            (crons(&["@every 1x"]), r#"time: unknown unit "x" in duration "1x""#),
            (crons(&["@every 10"]), r#"time: missing unit in duration "10""#),
            (crons(&["@every"]), "CronString does not have interval after @every"),
            (crons(&["@every 1d/25h"]), "phase cannot be greater than Interval"),
            (crons(&["TZ=UTC"]), "CronString has time zone but missing fields"),
            (
                cal(CalendarSpec {
                    hour: "1/0".into(),
                    minute: "5-2".into(),
                    second: "a".into(),
                    month: "foo".into(),
                    day_of_week: "1-2-3".into(),
                    ..Default::default()
                }),
                "Second is not in range [0-59], Minute End is before Start or not in range [0-59], \
                 Hour has invalid Step, DayOfWeek has too many dashes, Month is not in range [1-12]",
            ),
            (
                cal(CalendarSpec {
                    hour: "1/2/3".into(),
                    minute: "x/".into(),
                    day_of_month: "0".into(),
                    year: "1999".into(),
                    ..Default::default()
                }),
                "Minute missing step value, Hour has too many slashes, DayOfMonth is not in range \
                 [1-31], Year is not in range [2000-2100]",
            ),
            (
                cal(CalendarSpec { hour: "*/x".into(), ..Default::default() }),
                r#"strconv.Atoi: parsing "x": invalid syntax"#,
            ),
            (
                ScheduleSpec {
                    structured_calendar: vec![StructuredCalendarSpec { hour: vec![r(5, 2, 0)], ..Default::default() }],
                    ..Default::default()
                },
                "invalid calendar spec: Hour End is before Start or not in range [0-23]",
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(err(&spec), format!("Invalid schedule spec: {expected}"), "{spec:?}");
        }
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_temporal_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_temporal_duration("1.5d"), Ok(36 * 3_600_000_000_000));
        assert_eq!(parse_temporal_duration("1d12h"), Ok(36 * 3_600_000_000_000));
        assert_eq!(parse_temporal_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_temporal_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_temporal_duration("0"), Ok(0));
        assert_eq!(parse_temporal_duration("-2m"), Ok(-120_000_000_000));
        assert_eq!(parse_temporal_duration(""), Err(r#"time: invalid duration """#.into()));
        assert_eq!(parse_temporal_duration("h"), Err(r#"time: invalid duration "h""#.into()));
        assert!(parse_temporal_duration("9999999999h").is_err());
    }

    #[test]
    fn interval_validation() {
        let spec = |every, phase| ScheduleSpec {
            interval: vec![IntervalSpec { interval: every, phase }],
            ..Default::default()
        };
        assert_eq!(err(&spec(None, None)), "Invalid schedule spec: interval is too small");
        assert_eq!(err(&spec(secs(10), secs(-1))), "Invalid schedule spec: phase is negative");
        assert!(canonicalize(&spec(secs(1), None)).is_ok());
        assert!(canonicalize(&spec(secs(10), secs(9))).is_ok());
        let bad_nanos = Some(Duration { seconds: 5, nanos: -1 });
        assert_eq!(
            err(&spec(bad_nanos, None)),
            "Invalid schedule spec: interval is not a valid duration: proto: duration \
             (seconds:5 nanos:-1) has seconds and nanos with different signs"
        );
    }

    // --- time zones and DST --------------------------------------------------------------------

    #[test]
    fn reference_new_york_spring_forward_skips_the_missing_hour() {
        let spec = canonicalize(&crons(&["CRON_TZ=America/New_York 30 1,2,3 * * *"])).unwrap();
        assert_eq!(spec.timezone_name, "America/New_York");
        assert_eq!(
            matching(&spec, "d1", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
            [
                "2026-03-07T06:30:00Z",
                "2026-03-07T07:30:00Z",
                "2026-03-07T08:30:00Z",
                // 2026-03-08: 02:30 does not exist.
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-09T05:30:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-09T07:30:00Z",
            ]
        );
    }

    #[test]
    fn reference_new_york_fall_back_fires_the_repeated_hour_twice() {
        let spec = canonicalize(&crons(&["TZ=America/New_York 0,30 1 * * *"])).unwrap();
        assert_eq!(
            matching(&spec, "d2", "2026-10-31T00:00:00Z", "2026-11-02T12:00:00Z"),
            [
                "2026-10-31T05:00:00Z",
                "2026-10-31T05:30:00Z",
                // 01:00 and 01:30 EDT, then 01:00 and 01:30 EST.
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-02T06:00:00Z",
                "2026-11-02T06:30:00Z",
            ]
        );
    }

    #[test]
    fn reference_berlin_spring_forward() {
        let spec = ScheduleSpec {
            calendar: vec![CalendarSpec { hour: "1-3".into(), minute: "30".into(), ..Default::default() }],
            timezone_name: "Europe/Berlin".into(),
            ..Default::default()
        };
        assert_eq!(
            matching(&spec, "d3", "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z"),
            [
                "2026-03-28T00:30:00Z",
                "2026-03-28T01:30:00Z",
                "2026-03-28T02:30:00Z",
                "2026-03-29T00:30:00Z",
                "2026-03-29T01:30:00Z",
                "2026-03-29T23:30:00Z",
            ]
        );
    }

    /// East of Greenwich Go's `time.Date` resolves a repeated wall time to the *second*
    /// instant, so Temporal fires 02:00 CEST and 02:30 CET but neither 02:30 CEST nor
    /// 02:00 CET. Odd, but it is what the server does.
    #[test]
    fn reference_berlin_fall_back_quirk() {
        let spec = ScheduleSpec {
            calendar: vec![CalendarSpec { hour: "1-3".into(), minute: "0,30".into(), ..Default::default() }],
            timezone_name: "Europe/Berlin".into(),
            ..Default::default()
        };
        assert_eq!(
            matching(&spec, "d4", "2026-10-24T12:00:00Z", "2026-10-26T00:00:00Z"),
            [
                "2026-10-24T23:00:00Z",
                "2026-10-24T23:30:00Z",
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T02:30:00Z",
                "2026-10-26T00:00:00Z",
            ]
        );
    }

    #[test]
    fn reference_berlin_dst_in_2090() {
        let spring = crons(&["CRON_TZ=Europe/Berlin 30 2 * * *"]);
        assert_eq!(
            matching(&spring, "f1", "2090-03-25T00:00:00Z", "2090-03-28T00:00:00Z"),
            ["2090-03-25T01:30:00Z", "2090-03-27T00:30:00Z"]
        );
        let fall = crons(&["CRON_TZ=Europe/Berlin 0 2 * * *"]);
        assert_eq!(
            matching(&fall, "f2", "2090-10-28T00:00:00Z", "2090-11-01T00:00:00Z"),
            ["2090-10-29T01:00:00Z", "2090-10-30T01:00:00Z", "2090-10-31T01:00:00Z"]
        );
    }

    // --- exclusions, bounds, calendar edge cases --------------------------------------------

    #[test]
    fn reference_exclusion_in_local_time_across_fall_back() {
        let spec = ScheduleSpec {
            interval: vec![interval(1800, 0)],
            timezone_name: "America/New_York".into(),
            #[allow(deprecated)]
            exclude_calendar: vec![CalendarSpec { hour: "1".into(), ..Default::default() }],
            ..Default::default()
        };
        let canonical = canonicalize(&spec).unwrap();
        let excluded = StructuredCalendarSpec { hour: vec![r(1, 1, 1)], ..daily("") };
        assert_eq!(canonical.exclude_structured_calendar, vec![excluded]);
        #[allow(deprecated)]
        let no_string_form = canonical.exclude_calendar.is_empty();
        assert!(no_string_form);
        // Only 01:00:00 local is excluded (minute and second default to 0), and 01:00 happens
        // twice that night.
        assert_eq!(
            matching(&spec, "d5", "2026-11-01T03:00:00Z", "2026-11-01T08:00:00Z"),
            [
                "2026-11-01T03:30:00Z",
                "2026-11-01T04:00:00Z",
                "2026-11-01T04:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T07:30:00Z",
                "2026-11-01T08:00:00Z",
            ]
        );
    }

    #[test]
    fn reference_start_and_end_clip_an_interval_with_phase() {
        let spec = ScheduleSpec {
            interval: vec![interval(3600, 61)],
            start_time: ts("2026-01-01T02:01:01Z"),
            end_time: ts("2026-01-01T05:01:01Z"),
            ..Default::default()
        };
        assert_eq!(
            matching(&spec, "e1", "2026-01-01T00:00:00Z", "2026-01-01T08:00:00Z"),
            ["2026-01-01T02:01:01Z", "2026-01-01T03:01:01Z", "2026-01-01T04:01:01Z", "2026-01-01T05:01:01Z"]
        );
    }

    /// The search starts one second before `start_time`, so a sub-second start still lets the
    /// whole second it falls in match.
    #[test]
    fn reference_fractional_start_time() {
        let spec = ScheduleSpec {
            start_time: ts("2026-01-01T02:00:00.500Z"),
            end_time: ts("2026-01-01T02:03:00Z"),
            ..crons(&["* * * * *"])
        };
        assert_eq!(
            matching(&spec, "e2", "2026-01-01T00:00:00Z", "2026-01-01T08:00:00Z"),
            ["2026-01-01T02:00:00Z", "2026-01-01T02:01:00Z", "2026-01-01T02:02:00Z", "2026-01-01T02:03:00Z"]
        );
    }

    #[test]
    fn reference_leap_day_and_friday_thirteenth() {
        assert_eq!(
            matching(&crons(&["0 0 29 2 *"]), "f3", "2026-01-01T00:00:00Z", "2036-12-31T00:00:00Z"),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]
        );
        // Day of month and day of week must both match (unlike classic cron's "either").
        assert_eq!(
            matching(&crons(&["0 0 13 * FRI"]), "f4", "2026-01-01T00:00:00Z", "2027-12-31T00:00:00Z"),
            ["2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z", "2026-11-13T00:00:00Z", "2027-08-13T00:00:00Z"]
        );
    }

    #[test]
    fn reference_nothing_after_2100() {
        let spec = ScheduleSpec {
            calendar: vec![CalendarSpec {
                second: "*/15".into(),
                minute: "59".into(),
                hour: "23".into(),
                day_of_month: "31".into(),
                month: "dec".into(),
                year: "2099-2100".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            matching(&spec, "f7", "2099-12-31T23:58:00Z", "2101-01-01T00:00:00Z"),
            [
                "2099-12-31T23:59:00Z",
                "2099-12-31T23:59:15Z",
                "2099-12-31T23:59:30Z",
                "2099-12-31T23:59:45Z",
                "2100-12-31T23:59:00Z",
                "2100-12-31T23:59:15Z",
                "2100-12-31T23:59:30Z",
                "2100-12-31T23:59:45Z",
            ]
        );
        let every_hour = CompiledSpec::new(&crons(&["@every 1h"])).unwrap();
        assert_eq!(every_hour.next_after(ms("2100-12-31T23:00:00Z")), None);
    }

    #[test]
    fn next_after_is_strict_and_unions_calendars_and_intervals() {
        let mut spec = crons(&["0 12 * * *"]);
        spec.interval = vec![interval(7 * 3600, 0)];
        let compiled = CompiledSpec::new(&spec).unwrap();
        assert_eq!(compiled.next_after(ms("2026-01-01T12:00:00Z")), Some(ms("2026-01-01T14:00:00Z")));
        assert_eq!(compiled.next_after(ms("2026-01-01T11:59:59.999Z")), Some(ms("2026-01-01T12:00:00Z")));
        assert_eq!(CompiledSpec::new(&ScheduleSpec::default()).unwrap().next_after(0), None);
    }

    #[test]
    fn over_excluded_spec_gives_up_instead_of_spinning() {
        let spec = ScheduleSpec {
            interval: vec![interval(1, 0)],
            exclude_structured_calendar: vec![StructuredCalendarSpec {
                second: vec![r(0, 59, 1)],
                minute: vec![r(0, 59, 1)],
                hour: vec![r(0, 23, 1)],
                day_of_month: vec![r(1, 31, 1)],
                month: vec![r(1, 12, 1)],
                day_of_week: vec![r(0, 6, 1)],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(CompiledSpec::new(&spec).unwrap().next_after(0), None);
    }

    // --- jitter ----------------------------------------------------------------------------

    #[test]
    fn farmhash_matches_go_farm_vectors() {
        for (input, expected) in [
            ("", 0xdc56d17a),
            ("a", 0x3c973d4d),
            ("abcde", 0xa3f366ac),
            ("0123456789-0", 0xf8cc7928),
            ("0123456789^0123456789", 0x536d1efd),
            ("size:  a.out:  bad magic", 0xc6246b8d),
            ("Nepal premier won't resign.", 0x322984d9),
            ("Discard medicine more than two years old.", 0xe273108f),
        ] {
            assert_eq!(farmhash::fingerprint32(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn reference_jitter_on_hourly_cron() {
        let spec = ScheduleSpec { jitter: secs(1800), ..crons(&["@hourly"]) };
        assert_eq!(
            matching(&spec, "j1", "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z"),
            [
                "2026-01-01T01:21:54.158Z",
                "2026-01-01T02:11:19.525Z",
                "2026-01-01T03:06:53.260Z",
                "2026-01-01T04:21:35.278Z",
                "2026-01-01T05:28:50.856Z",
            ]
        );
    }

    #[test]
    fn reference_jitter_is_capped_at_the_next_nominal_time() {
        let spec = ScheduleSpec { interval: vec![interval(60, 0)], jitter: secs(3600), ..Default::default() };
        assert_eq!(
            matching(&spec, "j2", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"),
            [
                "2026-01-01T00:01:20.082Z",
                "2026-01-01T00:02:08.140Z",
                "2026-01-01T00:03:44.247Z",
                "2026-01-01T00:04:51.625Z",
            ]
        );
    }

    #[test]
    fn reference_jitter_with_zone_and_exclusion() {
        let spec = ScheduleSpec {
            calendar: vec![CalendarSpec { hour: "9".into(), day_of_week: "MON-FRI".into(), ..Default::default() }],
            #[allow(deprecated)]
            exclude_calendar: vec![CalendarSpec { hour: "9".into(), day_of_month: "1-7".into(), ..Default::default() }],
            jitter: secs(600),
            timezone_name: "Europe/Berlin".into(),
            ..Default::default()
        };
        assert_eq!(
            matching(&spec, "j3", "2026-03-01T00:00:00Z", "2026-03-20T00:00:00Z"),
            [
                "2026-03-09T08:02:04.399Z",
                "2026-03-10T08:04:16.768Z",
                "2026-03-11T08:00:43.701Z",
                "2026-03-12T08:07:38.415Z",
                "2026-03-13T08:04:18.060Z",
                "2026-03-16T08:03:04.464Z",
                "2026-03-17T08:03:47.061Z",
                "2026-03-18T08:05:52.035Z",
                "2026-03-19T08:08:33.029Z",
            ]
        );
    }

    /// The cap uses the next *raw* time, even when that time is excluded: 01:00's jitter may
    /// run the full 2 h because the next raw time (13:00, excluded) is 12 h away, while
    /// midnight's is capped by the 01:00 interval time an hour later.
    #[test]
    fn reference_jitter_cap_ignores_exclusions() {
        let spec = ScheduleSpec {
            interval: vec![interval(43_200, 3_600)],
            exclude_structured_calendar: vec![StructuredCalendarSpec {
                second: vec![r(0, 0, 0)],
                minute: vec![r(0, 0, 0)],
                hour: vec![r(13, 0, 0)],
                day_of_month: vec![r(1, 31, 0)],
                month: vec![r(1, 12, 0)],
                day_of_week: vec![r(0, 6, 0)],
                ..Default::default()
            }],
            jitter: secs(7200),
            ..crons(&["@daily"])
        };
        assert_eq!(
            matching(&spec, "f6", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
            ["2026-01-01T02:59:34.059Z", "2026-01-02T00:55:36.349Z", "2026-01-02T01:35:20.284Z"]
        );
        let compiled = CompiledSpec::new(&spec).unwrap();
        let next = compiled.next_time(ms("2026-01-01T00:00:00Z"), REF_NAMESPACE_ID, "f6").unwrap();
        assert_eq!(next.nominal_ms, ms("2026-01-01T01:00:00Z"));
        assert_eq!(next.next_ms, ms("2026-01-01T02:59:34.059Z"));
    }

    #[test]
    fn no_jitter_means_nominal() {
        let compiled = CompiledSpec::new(&crons(&["@hourly"])).unwrap();
        let nominal = ms("2026-01-01T01:00:00Z");
        assert_eq!(compiled.jittered(nominal, Some(nominal + 3_600_000), "ns", "s"), nominal);
    }
}
