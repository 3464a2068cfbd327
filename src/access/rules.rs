//! A person's access rules: enabled flag, validity window, weekly schedule.
//! A person outside their rules is recognised but refused, and the refusal says why.

use serde::Serialize;

use crate::gallery::Person;
use crate::gallery::record::{DAYS, parse_hhmm};

/// Why a recognised person is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
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
    /// The door's local time at `ms` (Unix milliseconds), from the system time zone.
    pub fn at(ms: i64) -> LocalTime {
        let secs = (ms.div_euclid(1000)) as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which lives for the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
        if !ok {
            return LocalTime::utc(ms);
        }
        LocalTime {
            // tm_wday: 0 = Sunday.
            weekday: ((tm.tm_wday + 6) % 7) as u8,
            minute: (tm.tm_hour * 60 + tm.tm_min) as u16,
        }
    }

    /// UTC time at `ms` (for tests and when the time zone is unknown).
    pub fn utc(ms: i64) -> LocalTime {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        // 1970-01-01 was a Thursday (weekday 3 when Monday is 0).
        LocalTime {
            weekday: ((days + 3).rem_euclid(7)) as u8,
            minute: (secs.rem_euclid(86_400) / 60) as u16,
        }
    }
}

/// Before this year the system clock is taken as unset: a board without a real-time clock
/// (a Raspberry Pi) boots at an old date and keeps it until network time is synchronised, and
/// validity windows and weekly schedules are then judged against the wrong date.
pub const EARLIEST_PLAUSIBLE_YEAR: i64 = 2024;

/// The UTC calendar date (year, month 1-12, day 1-31) of `ms` (Unix milliseconds).
pub fn utc_date(ms: i64) -> (i64, u32, u32) {
    super::when::civil_from_days(ms.div_euclid(86_400_000))
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
}
