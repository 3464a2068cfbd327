//! Times as a building manager types them (`facegate events --since …`): RFC 3339, a local
//! date or date and time, a span back from now (`15m`, `2h`, `3d`, `1w`), `today`,
//! `yesterday`, `now`; and local times for listings.
//!
//! Local time comes from a [`Zone`]: [`SystemZone`] (the C library's, i.e. `TZ` and
//! `/etc/localtime`) in the program, a [`FixedZone`] in tests.

/// A time zone: the offset from UTC at an instant, and local wall-clock time to an instant.
pub trait Zone {
    /// Seconds east of UTC at the Unix time `utc_s`.
    fn offset_s(&self, utc_s: i64) -> i64;
    /// The Unix time (seconds) of a local wall-clock time; `None` if it does not exist.
    fn local_to_utc(&self, t: &Civil) -> Option<i64>;
}

/// A wall-clock date and time (no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// Midnight at the start of a date.
    pub fn midnight(year: i64, month: u32, day: u32) -> Civil {
        Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }
}

/// A zone with a constant offset (tests, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedZone(pub i64);

impl Zone for FixedZone {
    fn offset_s(&self, _utc_s: i64) -> i64 {
        self.0
    }

    fn local_to_utc(&self, t: &Civil) -> Option<i64> {
        Some(civil_to_unix(t) - self.0)
    }
}

/// The system's time zone (`localtime_r` / `mktime`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemZone;

impl Zone for SystemZone {
    fn offset_s(&self, utc_s: i64) -> i64 {
        let secs = utc_s as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which lives for the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
        if ok { tm.tm_gmtoff as i64 } else { 0 }
    }

    fn local_to_utc(&self, t: &Civil) -> Option<i64> {
        // SAFETY: a zeroed tm is valid input; mktime reads and normalises only `tm`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = i32::try_from(t.year - 1900).ok()?;
        tm.tm_mon = t.month as i32 - 1;
        tm.tm_mday = t.day as i32;
        tm.tm_hour = t.hour as i32;
        tm.tm_min = t.minute as i32;
        tm.tm_sec = t.second as i32;
        // Let the C library decide whether daylight saving time is in force.
        tm.tm_isdst = -1;
        let s = unsafe { libc::mktime(&mut tm) };
        (s != -1).then_some(s as i64)
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1-12, day 1-31) of a day count from 1970-01-01, in the proleptic
/// Gregorian calendar (by eras of 400 years counted from 0000-03-01).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn civil_to_unix(t: &Civil) -> i64 {
    days_from_civil(t.year, t.month, t.day) * 86_400
        + i64::from(t.hour) * 3600
        + i64::from(t.minute) * 60
        + i64::from(t.second)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The local wall-clock time of a Unix time in ms.
pub fn to_civil(ms: i64, zone: &dyn Zone) -> Civil {
    let s = ms.div_euclid(1000);
    let local = s + zone.offset_s(s);
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    Civil {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: (sod % 3600 / 60) as u32,
        second: (sod % 60) as u32,
    }
}

/// `2026-11-24 08:03:12`, local.
pub fn format_local(ms: i64, zone: &dyn Zone) -> String {
    let c = to_civil(ms, zone);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `+01:00`: the offset at `ms`.
pub fn format_offset(ms: i64, zone: &dyn Zone) -> String {
    let off = zone.offset_s(ms.div_euclid(1000));
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// RFC 3339 with the local offset and milliseconds: `2026-11-24T08:03:12.345+01:00`.
pub fn format_rfc3339(ms: i64, zone: &dyn Zone) -> String {
    let c = to_civil(ms, zone);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
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
/// - `15m`, `2h`, `3d`, `1w`, `30s`: that long before now;
/// - `now`, `today` (local midnight this morning), `yesterday` (local midnight before);
/// - `YYYY-MM-DD` (local midnight), `YYYY-MM-DD HH:MM[:SS]` or with `T` (local);
/// - RFC 3339 with `Z` or `±HH:MM` (fractional seconds allowed).
pub fn parse_when(input: &str, now_ms: i64, zone: &dyn Zone) -> Result<i64, WhenError> {
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
            let c = to_civil(now_ms, zone);
            let days = days_from_civil(c.year, c.month, c.day) - i64::from(lower == "yesterday");
            let (year, month, day) = civil_from_days(days);
            let midnight = Civil::midnight(year, month, day);
            return zone
                .local_to_utc(&midnight)
                .map(|s| s * 1000)
                .ok_or_else(|| err("no local midnight on that day"));
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

fn parse_absolute(s: &str, zone: &dyn Zone) -> Result<i64, String> {
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
    let year = i64::from(number(parts[0], "year")?);
    let month = number(parts[1], "month")?;
    let day = number(parts[2], "day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is not 1-12"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("{year:04}-{month:02} has no day {day}"));
    }
    let mut c = Civil::midnight(year, month, day);
    let mut millis = 0i64;
    let mut offset: Option<i64> = None;
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
                sign * (i64::from(h) * 3600 + i64::from(m) * 60)
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
        c.hour = number(fields[0], "hour")?;
        c.minute = number(fields[1], "minute")?;
        if let Some(sec) = fields.get(2) {
            c.second = number(sec, "second")?;
        }
        if c.hour > 23 || c.minute > 59 || c.second > 60 {
            return Err(format!(
                "{:02}:{:02}:{:02} is not a time of day",
                c.hour, c.minute, c.second
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
    let secs = match offset {
        Some(off) => civil_to_unix(&c) - off,
        None => zone
            .local_to_utc(&c)
            .ok_or("that local time does not exist here")?,
    };
    Ok(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24 10:30:00 UTC, a Tuesday.
    const NOW: i64 = 1_795_516_200_000;
    const CET: FixedZone = FixedZone(3600);

    fn p(s: &str) -> Result<i64, WhenError> {
        parse_when(s, NOW, &CET)
    }

    #[test]
    fn the_fixed_now_is_what_the_tests_think() {
        assert_eq!(format_local(NOW, &FixedZone(0)), "2026-11-24 10:30:00");
        assert_eq!(format_local(NOW, &CET), "2026-11-24 11:30:00");
        assert_eq!(
            format_rfc3339(NOW + 7, &CET),
            "2026-11-24T11:30:00.007+01:00"
        );
        assert_eq!(format_offset(NOW, &FixedZone(-(5 * 3600 + 1800))), "-05:30");
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
        assert_eq!(format_local(today, &CET), "2026-11-24 00:00:00");
        assert_eq!(format_local(today, &FixedZone(0)), "2026-11-23 23:00:00");
        assert_eq!(p("yesterday"), Ok(today - 86_400_000));
        assert_eq!(p("Today"), Ok(today));
        // West of UTC at 10:30 UTC it is still early morning of the same date.
        let ny = FixedZone(-5 * 3600);
        let t = parse_when("today", NOW, &ny).unwrap();
        assert_eq!(format_local(t, &ny), "2026-11-24 00:00:00");
        // Across a month boundary.
        let first = parse_when("2026-12-01 09:00", NOW, &CET).unwrap();
        let y = parse_when("yesterday", first, &CET).unwrap();
        assert_eq!(format_local(y, &CET), "2026-11-30 00:00:00");
    }

    #[test]
    fn dates_and_times_are_local_unless_they_say_otherwise() {
        let midnight = p("2026-11-24").unwrap();
        assert_eq!(format_local(midnight, &CET), "2026-11-24 00:00:00");
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
    fn day_counts_round_trip() {
        for d in [-800_000, -1, 0, 1, 59, 365, 10_957, 20_416, 1_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn system_zone_agrees_with_itself() {
        // Whatever the machine's zone: local midnight today maps back to 00:00:00 local.
        let t = parse_when("today", NOW, &SystemZone).unwrap();
        assert_eq!(&format_local(t, &SystemZone)[11..], "00:00:00");
    }
}
