//! A person's access rules: enabled flag, validity window, weekly schedule.
//! A person outside their rules is recognised but refused, and the refusal says why.

use serde::Serialize;

use super::when::{self, TimeZone};
use crate::gallery::Person;
use crate::gallery::record::{DAYS, parse_hhmm};

/// Why a recognised person is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[schema(as = RuleRefusal)]
pub enum Refusal {
    #[error("person is disabled")]
    Disabled,
    #[error("person is not valid yet")]
    NotYetValid { from_ms: i64 },
    #[error("person's access has expired")]
    Expired { until_ms: i64 },
    #[error("outside the person's weekly schedule")]
    OutsideSchedule,
}

/// Local wall-clock time: day of the week (0 = Monday) and minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: u8,
    pub minute: u16,
}

impl LocalTime {
    /// The door's local time at `ms` (Unix milliseconds), in the door's time zone
    /// ([`when::local_zone`]: `access.time_zone`, else the system's).
    pub fn at(ms: i64) -> LocalTime {
        LocalTime::in_zone(ms, &when::local_zone())
    }

    /// The wall-clock time at `ms` in `zone`. Across a change to or from summer time the
    /// schedule follows the wall clock: on the day the clocks go forward the skipped hour
    /// (02:00-03:00 in Europe/Berlin) is never the local time, so a window inside it does not
    /// open that day; on the day they go back the repeated hour is lived twice, and a window
    /// inside it opens twice.
    pub fn in_zone(ms: i64, zone: &TimeZone) -> LocalTime {
        let t = when::local_datetime(ms, zone);
        LocalTime {
            weekday: t.weekday().to_monday_zero_offset() as u8,
            minute: t.hour() as u16 * 60 + t.minute() as u16,
        }
    }

    /// UTC time at `ms` (for tests).
    pub fn utc(ms: i64) -> LocalTime {
        LocalTime::in_zone(ms, &TimeZone::UTC)
    }
}

/// Before this year the system clock is taken as unset: a board without a real-time clock
/// (a Raspberry Pi) boots at an old date and keeps it until network time is synchronised, and
/// validity windows and weekly schedules are then judged against the wrong date.
pub const EARLIEST_PLAUSIBLE_YEAR: i64 = 2024;

/// The UTC calendar date (year, month 1-12, day 1-31) of `ms` (Unix milliseconds).
pub fn utc_date(ms: i64) -> (i64, u32, u32) {
    let d = when::local_datetime(ms, &TimeZone::UTC).date();
    (i64::from(d.year()), d.month() as u32, d.day() as u32)
}

/// Whether the clock at `now_ms` looks set: `Err` names the date it shows.
pub fn check_clock(now_ms: i64) -> Result<(), String> {
    let (y, m, d) = utc_date(now_ms);
    if y < EARLIEST_PLAUSIBLE_YEAR {
        Err(format!("{y:04}-{m:02}-{d:02}"))
    } else {
        Ok(())
    }
}

/// Check a person's rules at `now_ms` (local time `local`).
pub fn check(person: &Person, now_ms: i64, local: LocalTime) -> Result<(), Refusal> {
    if !person.enabled {
        return Err(Refusal::Disabled);
    }
    if let Some(from_ms) = person.valid_from
        && now_ms < from_ms
    {
        return Err(Refusal::NotYetValid { from_ms });
    }
    if let Some(until_ms) = person.valid_until
        && now_ms >= until_ms
    {
        return Err(Refusal::Expired { until_ms });
    }
    if person.schedule.is_empty() {
        return Ok(());
    }
    let day = DAYS[local.weekday as usize % 7];
    let inside = person.schedule.iter().any(|w| {
        w.days.iter().any(|d| d == day)
            && matches!(
                (parse_hhmm(&w.from), parse_hhmm(&w.until)),
                (Some(a), Some(b)) if a <= local.minute && local.minute < b
            )
    });
    if inside {
        Ok(())
    } else {
        Err(Refusal::OutsideSchedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_an_unset_clock() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(-1), (1969, 12, 31));
        // 2024-02-29 12:00 UTC (a leap day) and 2026-11-24.
        assert_eq!(utc_date(1_709_208_000_000), (2024, 2, 29));
        assert_eq!(utc_date(1_795_478_400_000), (2026, 11, 24));
        assert_eq!(utc_date(951_782_400_000), (2000, 2, 29));
        assert_eq!(check_clock(0), Err("1970-01-01".into()));
        assert_eq!(check_clock(1_700_000_000_000), Err("2023-11-14".into()));
        assert_eq!(check_clock(1_709_208_000_000), Ok(()));
    }
    use crate::gallery::record::Window;
    use crate::gallery::{NewPerson, Person};

    fn person() -> Person {
        Person::from_new(
            "p".into(),
            NewPerson {
                name: "P".into(),
                ..NewPerson::default()
            },
            0,
        )
        .unwrap()
    }

    #[test]
    fn utc_weekday_and_minute() {
        // 2026-11-24 was a Tuesday; 13:45 UTC.
        let ms = 1_795_527_900_000;
        assert_eq!(
            LocalTime::utc(ms),
            LocalTime {
                weekday: 1,
                minute: 13 * 60 + 45
            }
        );
        assert_eq!(LocalTime::utc(0).weekday, 3);
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let t = LocalTime {
            weekday: 0,
            minute: 9 * 60,
        };
        let mut p = person();
        assert_eq!(check(&p, 1000, t), Ok(()));
        p.enabled = false;
        assert_eq!(check(&p, 1000, t), Err(Refusal::Disabled));
        p.enabled = true;
        p.valid_from = Some(2000);
        assert!(matches!(
            check(&p, 1000, t),
            Err(Refusal::NotYetValid { .. })
        ));
        p.valid_from = None;
        p.valid_until = Some(1000);
        assert!(matches!(check(&p, 1000, t), Err(Refusal::Expired { .. })));
        assert_eq!(check(&p, 999, t), Ok(()));
        p.valid_until = None;
        p.schedule = vec![Window {
            days: vec!["mon".into(), "tue".into()],
            from: "08:00".into(),
            until: "18:00".into(),
        }];
        assert_eq!(check(&p, 1000, t), Ok(()));
        let evening = LocalTime {
            weekday: 0,
            minute: 18 * 60,
        };
        assert_eq!(check(&p, 1000, evening), Err(Refusal::OutsideSchedule));
        let sunday = LocalTime {
            weekday: 6,
            minute: 9 * 60,
        };
        assert_eq!(check(&p, 1000, sunday), Err(Refusal::OutsideSchedule));
    }

    /// The minutes (UTC, from `start` for `hours`) at which `p`'s schedule lets them in,
    /// judged in Europe/Berlin.
    fn open_minutes(p: &Person, start: &str, hours: i64) -> Vec<String> {
        let berlin = when::zone_named("Europe/Berlin").unwrap();
        let t0 = when::parse_when(start, 0, &TimeZone::UTC).unwrap();
        (0..hours * 60)
            .map(|m| t0 + m * 60_000)
            .filter(|&ms| check(p, ms, LocalTime::in_zone(ms, &berlin)).is_ok())
            .map(|ms| when::format_local(ms, &TimeZone::UTC)[11..16].to_owned())
            .collect()
    }

    fn sunday(from: &str, until: &str) -> Person {
        let mut p = person();
        p.schedule = vec![Window {
            days: vec!["sun".into()],
            from: from.into(),
            until: until.into(),
        }];
        p
    }

    #[test]
    fn schedules_follow_the_wall_clock_when_the_clocks_go_forward() {
        // 2026-03-29, a Sunday: in Berlin 02:00 CET (01:00 UTC) becomes 03:00 CEST.
        let day = "2026-03-29T00:00:00Z";
        // A window inside the skipped hour does not open that day.
        assert!(open_minutes(&sunday("02:00", "02:45"), day, 4).is_empty());
        // 01:30-03:30 local is one hour long that day: 00:30-01:30 UTC.
        let open = open_minutes(&sunday("01:30", "03:30"), day, 4);
        assert_eq!(open.len(), 60);
        assert_eq!((open[0].as_str(), open[59].as_str()), ("00:30", "01:29"));
        // The week before and after, the same window is two hours long.
        assert_eq!(
            open_minutes(&sunday("01:30", "03:30"), "2026-03-22T00:00:00Z", 4).len(),
            120
        );
    }

    #[test]
    fn schedules_follow_the_wall_clock_when_the_clocks_go_back() {
        // 2026-10-25, a Sunday: in Berlin 03:00 CEST (01:00 UTC) becomes 02:00 CET, and
        // 02:00-03:00 local happens twice.
        let day = "2026-10-25T00:00:00Z";
        // A window inside the repeated hour opens twice: 00:15-00:45 and 01:15-01:45 UTC.
        let open = open_minutes(&sunday("02:15", "02:45"), day, 4);
        assert_eq!(open.len(), 60);
        assert_eq!((open[0].as_str(), open[29].as_str()), ("00:15", "00:44"));
        assert_eq!((open[30].as_str(), open[59].as_str()), ("01:15", "01:44"));
        // 01:00-03:00 local lasts three hours that day (23:00-02:00 UTC).
        let open = open_minutes(&sunday("01:00", "03:00"), "2026-10-24T22:00:00Z", 5);
        assert_eq!(open.len(), 180);
        assert_eq!((open[0].as_str(), open[179].as_str()), ("23:00", "01:59"));
    }

    #[test]
    fn local_time_is_in_the_zone_given() {
        // 2026-11-24 13:45 UTC: 14:45 in Berlin, 08:45 in New York, 00:45 on Wednesday in
        // Sydney (summer time, +11:00).
        let ms = 1_795_527_900_000;
        let at = |name: &str| LocalTime::in_zone(ms, &when::zone_named(name).unwrap());
        assert_eq!(
            at("Europe/Berlin"),
            LocalTime {
                weekday: 1,
                minute: 14 * 60 + 45
            }
        );
        assert_eq!(
            at("America/New_York"),
            LocalTime {
                weekday: 1,
                minute: 8 * 60 + 45
            }
        );
        assert_eq!(
            at("Australia/Sydney"),
            LocalTime {
                weekday: 2,
                minute: 45
            }
        );
    }
}
