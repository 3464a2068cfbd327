//! Times as a building manager types them (`facegate events --since …`): RFC 3339, a local
//! date or date and time, a span back from now (`15m`, `2h`, `3d`, `1w`), `today`,
//! `yesterday`, `now`; and local times for listings.
//!
//! The calendar and the time zones are [`jiff`]'s: real IANA zones from the system's tz
//! database (`/usr/share/zoneinfo`, `TZ` and `/etc/localtime`), with a copy of the database
//! bundled into the binary as a fallback for a board without one. The door's zone
//! ([`local_zone`]) is `access.time_zone` when set, else the system's.
//!
//! Daylight saving time: a local time that does not exist (in Europe/Berlin, 2026-03-29 02:30:
//! the clocks go from 02:00 to 03:00) is read as the same instant a clock not yet moved forward
//! would show, i.e. 03:30 summer time; a local time that happens twice (2026-10-25 02:30) is
//! read as the first of the two, so that `--since` loses nothing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::Offset;
pub use jiff::tz::TimeZone;

static LOCAL_ZONE: OnceLock<TimeZone> = OnceLock::new();

/// An `access.time_zone` that names no zone of the tz database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a time zone of the tz database (/usr/share/zoneinfo, or the copy built \
     into facegate){suggestion}: use an IANA name such as \"Europe/Berlin\", or \"\" for the \
     system's zone"
)]
pub struct UnknownZone {
    pub name: String,
    suggestion: String,
}

/// The zone an `access.time_zone` value names: `""` is the system's zone (`TZ`, else
/// `/etc/localtime`), anything else an IANA name (`Europe/Berlin`, `UTC`).
pub fn zone_named(name: &str) -> Result<TimeZone, UnknownZone> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(system_zone());
    }
    TimeZone::get(name).map_err(|_| {
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let suggestion = crate::config::nearest(name, &refs)
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        UnknownZone {
            name: name.to_owned(),
            suggestion,
        }
    })
}

/// The system's time zone (jiff looks at `TZ` and `/etc/localtime` again every five minutes,
/// so a zone changed with `timedatectl` is followed without a restart); UTC, with a warning
/// (once), when it cannot be determined.
fn system_zone() -> TimeZone {
    static WARNED: AtomicBool = AtomicBool::new(false);
    TimeZone::try_system().unwrap_or_else(|e| {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the system's time zone is unknown ({e}): local times and weekly schedules \
                 are in UTC; set access.time_zone or TZ"
            );
        }
        TimeZone::UTC
    })
}

/// Make `zone` the door's local zone ([`local_zone`]) for the rest of the process, instead of
/// the system's. Done once, by the program after reading its configuration (a named
/// `access.time_zone`); `Err` when one was already set.
pub fn set_local_zone(zone: TimeZone) -> Result<(), TimeZone> {
    LOCAL_ZONE.set(zone)
}

/// The door's local zone: the one [`set_local_zone`] set (`access.time_zone`), else the
/// system's. Weekly schedules, `--since` and listed local times are in this zone. (A clone of
/// a `TimeZone` is cheap: it is reference-counted.)
pub fn local_zone() -> TimeZone {
    LOCAL_ZONE.get().cloned().unwrap_or_else(system_zone)
}

/// The instant of a Unix time in ms, clamped to the range jiff represents (years -9999..=9999).
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The local wall-clock date and time of a Unix time in ms.
pub fn local_datetime(ms: i64, zone: &TimeZone) -> DateTime {
    zone.to_datetime(timestamp(ms))
}

/// `2026-11-24 08:03:12`, local.
pub fn format_local(ms: i64, zone: &TimeZone) -> String {
    local_datetime(ms, zone)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `+01:00`: the offset at `ms`.
pub fn format_offset(ms: i64, zone: &TimeZone) -> String {
    let off = zone.to_offset(timestamp(ms)).seconds();
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// RFC 3339 with the local offset and milliseconds: `2026-11-24T08:03:12.345+01:00`.
pub fn format_rfc3339(ms: i64, zone: &TimeZone) -> String {
    format!(
        "{}.{:03}{}",
        local_datetime(ms, zone).strftime("%Y-%m-%dT%H:%M:%S"),
        ms.rem_euclid(1000),
        format_offset(ms, zone)
    )
}

/// What the error message shows a user.
pub const EXAMPLES: &str = "2026-11-24, \"2026-11-24 08:00\", 2026-11-24T08:00:00+01:00, \
     15m, 2h, 3d, 1w, today, yesterday, now";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a time I understand ({why}); use e.g. {EXAMPLES}")]
pub struct WhenError {
    pub input: String,
    pub why: String,
}

/// Parse a time as typed, relative to `now_ms`, in `zone`. Returns Unix ms.
///
/// - `15m`, `2h`, `3d`, `1w`, `30s`: that long before now (a day is 24 hours);
/// - `now`, `today` (the start of this local day), `yesterday` (the start of the one before);
/// - `YYYY-MM-DD` (local midnight), `YYYY-MM-DD HH:MM[:SS]` or with `T` (local);
/// - RFC 3339 with `Z` or `±HH:MM` (fractional seconds allowed).
pub fn parse_when(input: &str, now_ms: i64, zone: &TimeZone) -> Result<i64, WhenError> {
    let err = |why: &str| WhenError {
        input: input.to_owned(),
        why: why.to_owned(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "now" => return Ok(now_ms),
        "today" | "yesterday" => {
            let today = local_datetime(now_ms, zone).date();
            let day = if lower == "yesterday" {
                today.yesterday()
            } else {
                Ok(today)
            };
            return day
                .and_then(|d| d.to_zoned_datetime(zone.clone()))
                .and_then(|z| z.start_of_day())
                .map(|z| z.timestamp().as_millisecond())
                .map_err(|_| err("that day is out of range"));
        }
        _ => {}
    }
    if let Some(unit) = lower.chars().last().filter(|c| c.is_ascii_alphabetic())
        && lower[..lower.len() - 1].bytes().all(|b| b.is_ascii_digit())
    {
        let n: i64 = lower[..lower.len() - 1]
            .parse()
            .map_err(|_| err("a number must come before the unit"))?;
        let unit_ms: i64 = match unit {
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(err("the unit of a span is s, m, h, d or w")),
        };
        return n
            .checked_mul(unit_ms)
            .and_then(|d| now_ms.checked_sub(d))
            .ok_or_else(|| err("too far back"));
    }
    parse_absolute(s, zone).map_err(|why| err(&why))
}

fn number(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse().map_err(|_| format!("{what} {s:?} is too large"))
}

fn parse_absolute(s: &str, zone: &TimeZone) -> Result<i64, String> {
    // Date: YYYY-MM-DD.
    let cut = s.len().min(10);
    if !s.is_char_boundary(cut) {
        return Err("not a span such as 2h, nor a date written YYYY-MM-DD".into());
    }
    let (date, rest) = s.split_at(cut);
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err("not a span such as 2h, nor a date written YYYY-MM-DD".into());
    }
    // Four, two and two digits: each fits its type.
    let year = number(parts[0], "year")?;
    let month = number(parts[1], "month")?;
    let day = number(parts[2], "day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is not 1-12"));
    }
    let date = Date::new(year as i16, month as i8, day as i8)
        .map_err(|_| format!("{year:04}-{month:02} has no day {day}"))?;
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    let mut millis = 0i64;
    let mut offset: Option<i32> = None;
    if !rest.is_empty() {
        let rest = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('T'))
            .or_else(|| rest.strip_prefix('t'))
            .ok_or("put a space or T between the date and the time")?
            .trim_start();
        // Zone suffix: Z, or +HH:MM / -HH:MM after the time.
        let (time, zone_part) =
            if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
                (t, Some("Z"))
            } else if let Some(i) = rest.rfind(['+', '-']) {
                (&rest[..i], Some(&rest[i..]))
            } else {
                (rest, None)
            };
        if let Some(z) = zone_part {
            offset = Some(if z == "Z" {
                0
            } else {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let (h, m) = z[1..].split_once(':').ok_or("write the offset as +HH:MM")?;
                let (h, m) = (number(h, "offset hours")?, number(m, "offset minutes")?);
                if h > 23 || m > 59 {
                    return Err("the offset is out of range".into());
                }
                sign * (h as i32 * 3600 + m as i32 * 60)
            });
        }
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let fields: Vec<&str> = hms.split(':').collect();
        if !(2..=3).contains(&fields.len()) {
            return Err("write the time as HH:MM or HH:MM:SS".into());
        }
        hour = number(fields[0], "hour")?;
        minute = number(fields[1], "minute")?;
        if let Some(sec) = fields.get(2) {
            second = number(sec, "second")?;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(format!(
                "{hour:02}:{minute:02}:{second:02} is not a time of day"
            ));
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the fraction of a second must be digits".into());
            }
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            millis = i64::from(number(&f3, "milliseconds")?);
        }
    }
    // A leap second (:60) is read as the first second of the next minute.
    let leap = i64::from(second == 60);
    let time = Time::new(hour as i8, minute as i8, second.min(59) as i8, 0)
        .map_err(|e| format!("not a time of day: {e}"))?;
    let dt = date.to_datetime(time);
    let instant = match offset {
        Some(off) => Offset::from_seconds(off)
            .and_then(|o| o.to_timestamp(dt))
            .map_err(|_| "the time is out of range".to_owned())?,
        // A time skipped by a change to summer time is moved forward by the change; a time
        // that happens twice is the first of the two (see the module's documentation).
        None => zone
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map_err(|_| "that local time is out of range".to_owned())?,
    };
    Ok((instant.as_millisecond() + leap * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24 10:30:00 UTC, a Tuesday.
    const NOW: i64 = 1_795_516_200_000;

    fn fixed(seconds: i32) -> TimeZone {
        TimeZone::fixed(Offset::from_seconds(seconds).unwrap())
    }

    fn cet() -> TimeZone {
        fixed(3600)
    }

    fn berlin() -> TimeZone {
        zone_named("Europe/Berlin").unwrap()
    }

    fn p(s: &str) -> Result<i64, WhenError> {
        parse_when(s, NOW, &cet())
    }

    #[test]
    fn the_fixed_now_is_what_the_tests_think() {
        assert_eq!(format_local(NOW, &TimeZone::UTC), "2026-11-24 10:30:00");
        assert_eq!(format_local(NOW, &cet()), "2026-11-24 11:30:00");
        assert_eq!(
            format_rfc3339(NOW + 7, &cet()),
            "2026-11-24T11:30:00.007+01:00"
        );
        assert_eq!(format_offset(NOW, &fixed(-(5 * 3600 + 1800))), "-05:30");
        assert_eq!(
            format_rfc3339(-1, &TimeZone::UTC),
            "1969-12-31T23:59:59.999+00:00"
        );
    }

    #[test]
    fn spans_go_back_from_now() {
        assert_eq!(p("15m"), Ok(NOW - 15 * 60_000));
        assert_eq!(p("2h"), Ok(NOW - 2 * 3_600_000));
        assert_eq!(p("3d"), Ok(NOW - 3 * 86_400_000));
        assert_eq!(p("1w"), Ok(NOW - 7 * 86_400_000));
        assert_eq!(p("30s"), Ok(NOW - 30_000));
        assert_eq!(p(" 2H "), Ok(NOW - 2 * 3_600_000));
        assert_eq!(p("now"), Ok(NOW));
    }

    #[test]
    fn today_and_yesterday_are_local_midnights() {
        // 11:30 in CET: today began at 2026-11-24 00:00 CET = 2026-11-23 23:00 UTC.
        let today = p("today").unwrap();
        assert_eq!(format_local(today, &cet()), "2026-11-24 00:00:00");
        assert_eq!(format_local(today, &TimeZone::UTC), "2026-11-23 23:00:00");
        assert_eq!(p("yesterday"), Ok(today - 86_400_000));
        assert_eq!(p("Today"), Ok(today));
        // West of UTC at 10:30 UTC it is still early morning of the same date.
        let ny = fixed(-5 * 3600);
        let t = parse_when("today", NOW, &ny).unwrap();
        assert_eq!(format_local(t, &ny), "2026-11-24 00:00:00");
        // Across a month boundary.
        let first = parse_when("2026-12-01 09:00", NOW, &cet()).unwrap();
        let y = parse_when("yesterday", first, &cet()).unwrap();
        assert_eq!(format_local(y, &cet()), "2026-11-30 00:00:00");
    }

    #[test]
    fn dates_and_times_are_local_unless_they_say_otherwise() {
        let midnight = p("2026-11-24").unwrap();
        assert_eq!(format_local(midnight, &cet()), "2026-11-24 00:00:00");
        assert_eq!(p("2026-11-24 08:00"), Ok(midnight + 8 * 3_600_000));
        assert_eq!(p("2026-11-24T08:00"), Ok(midnight + 8 * 3_600_000));
        assert_eq!(
            p("2026-11-24 08:00:30"),
            Ok(midnight + 8 * 3_600_000 + 30_000)
        );
        // RFC 3339 carries its own offset.
        assert_eq!(p("2026-11-24T10:30:00Z"), Ok(NOW));
        assert_eq!(p("2026-11-24T11:30:00+01:00"), Ok(NOW));
        assert_eq!(p("2026-11-24T05:30:00-05:00"), Ok(NOW));
        assert_eq!(p("2026-11-24T10:30:00.25Z"), Ok(NOW + 250));
        assert_eq!(p("2026-11-24t10:30:00z"), Ok(NOW));
        // A leap second is the first second of the next minute.
        assert_eq!(p("2026-11-24T10:29:60Z"), Ok(NOW));
        // Leap years.
        assert!(p("2028-02-29").is_ok());
        assert!(p("2026-02-29").is_err());
    }

    #[test]
    fn nonsense_is_refused_with_examples() {
        for bad in [
            "",
            "soon",
            "3 days",
            "15x",
            "m",
            "2026-13-01",
            "2026-11-31",
            "2026-11-24 25:00",
            "2026-11-24 8",
            "24/11/2026",
            "2026-11-24T10:30:00+0100",
            "99999999999999999999d",
            "ééééééééé",
        ] {
            let e = p(bad).expect_err(bad);
            let m = e.to_string();
            assert!(
                m.contains("2026-11-24") && m.contains("yesterday"),
                "{bad}: {m}"
            );
            assert!(m.contains(&format!("{:?}", bad)), "{bad}: {m}");
        }
        assert!(
            p("2026-11-24 25:00")
                .unwrap_err()
                .why
                .contains("not a time of day")
        );
        assert!(p("2026-11-31").unwrap_err().why.contains("no day 31"));
    }

    #[test]
    fn local_times_in_a_real_zone_follow_its_summer_time() {
        let b = berlin();
        // Winter +01:00, summer +02:00, on the right dates.
        let winter = parse_when("2026-01-15 12:00", NOW, &b).unwrap();
        let summer = parse_when("2026-07-15 12:00", NOW, &b).unwrap();
        assert_eq!(format_rfc3339(winter, &b), "2026-01-15T12:00:00.000+01:00");
        assert_eq!(format_rfc3339(summer, &b), "2026-07-15T12:00:00.000+02:00");
        assert_eq!(format_local(summer, &TimeZone::UTC), "2026-07-15 10:00:00");
        // `today` on the day the clocks go forward begins at midnight, +01:00, and that day
        // is 23 hours long: `yesterday` from the next day is 23 hours before `today`.
        let sunday = parse_when("2026-03-29 12:00", NOW, &b).unwrap();
        let monday = parse_when("2026-03-30 12:00", NOW, &b).unwrap();
        let start = parse_when("today", sunday, &b).unwrap();
        assert_eq!(format_rfc3339(start, &b), "2026-03-29T00:00:00.000+01:00");
        assert_eq!(
            parse_when("today", monday, &b).unwrap() - start,
            23 * 3_600_000
        );
        assert_eq!(parse_when("yesterday", monday, &b), Ok(start));
    }

    #[test]
    fn skipped_and_repeated_local_times() {
        let b = berlin();
        // 2026-03-29 02:30 does not exist in Berlin (02:00 CET -> 03:00 CEST): it is read
        // as 01:30 UTC, the instant a clock not yet moved forward would call 02:30, which
        // the moved clock shows as 03:30.
        let gap = parse_when("2026-03-29 02:30", NOW, &b).unwrap();
        assert_eq!(format_local(gap, &TimeZone::UTC), "2026-03-29 01:30:00");
        assert_eq!(format_local(gap, &b), "2026-03-29 03:30:00");
        // 2026-10-25 02:30 happens twice (CEST, then CET an hour later): the first one.
        let fold = parse_when("2026-10-25 02:30", NOW, &b).unwrap();
        assert_eq!(format_rfc3339(fold, &b), "2026-10-25T02:30:00.000+02:00");
        assert_eq!(format_local(fold, &TimeZone::UTC), "2026-10-25 00:30:00");
        // Both are listed with the offset that tells them apart.
        let second = fold + 3_600_000;
        assert_eq!(format_local(second, &b), "2026-10-25 02:30:00");
        assert_eq!(format_offset(second, &b), "+01:00");
        // An explicit offset picks the second one.
        assert_eq!(parse_when("2026-10-25T02:30:00+01:00", NOW, &b), Ok(second));
    }

    #[test]
    fn zone_names_are_checked() {
        assert!(zone_named("Europe/Berlin").is_ok());
        assert!(zone_named("UTC").is_ok());
        assert!(zone_named("").is_ok());
        let e = zone_named("Europe/Berln").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("\"Europe/Berln\""), "{m}");
        assert!(m.contains("did you mean \"Europe/Berlin\""), "{m}");
        // The copy built in (for a board without /usr/share/zoneinfo) has the zones too.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        assert!(bundled.get("Europe/Berlin").is_ok());
        assert!(bundled.get("America/New_York").is_ok());
        let e = zone_named("Mars/Olympus_Mons").unwrap_err();
        assert!(e.to_string().contains("IANA name"), "{e}");
    }

    #[test]
    fn system_zone_agrees_with_itself() {
        // Whatever the machine's zone: local midnight today maps back to 00:00:00 local (or
        // the first instant of a day that starts later, where midnight is skipped).
        let z = &local_zone();
        let t = parse_when("today", NOW, z).unwrap();
        assert_eq!(local_datetime(t, z).date(), local_datetime(NOW, z).date());
        assert!(t <= NOW && NOW - t < 25 * 3_600_000);
    }

    #[test]
    fn out_of_range_times_are_clamped_not_panicking() {
        // jiff's range: years -9999..=9999, a day short at each end so that every offset fits.
        assert_eq!(format_local(i64::MAX, &cet()), "9999-12-30 23:00:00");
        assert!(format_local(i64::MIN, &cet()).starts_with("-9999-01-02"));
        assert!(format_rfc3339(i64::MIN, &TimeZone::UTC).ends_with("+00:00"));
    }
}
