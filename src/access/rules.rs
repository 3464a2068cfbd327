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
