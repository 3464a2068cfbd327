//! The console's forms as typed API requests: the person rules form to `NewPerson` /
//! `PersonPatch` (local date-times, a weekly schedule as text), and back for editing.
//! A form that does not parse is shown again with what was typed and the reason.

use serde::{Deserialize, Serialize};

use crate::access::when::{TimeZone, local_datetime, local_zone, parse_when};
use crate::gallery::record::Window;
use crate::gallery::{NewPerson, Person, PersonPatch};

/// The person form as posted (and as shown again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonForm {
    pub csrf: String,
    pub id: String,
    pub name: String,
    pub external_id: String,
    /// A checkbox: present ("on") when ticked.
    pub enabled: Option<String>,
    pub valid_from: String,
    pub valid_until: String,
    pub schedule: String,
}

/// What the form template shows.
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    pub id: String,
    pub name: String,
    pub external_id: String,
    pub enabled: bool,
    pub valid_from: String,
    pub valid_until: String,
    pub schedule: String,
}

impl PersonForm {
    pub fn view(&self) -> FormView {
        FormView {
            id: self.id.clone(),
            name: self.name.clone(),
            external_id: self.external_id.clone(),
            enabled: self.enabled.is_some(),
            valid_from: self.valid_from.clone(),
            valid_until: self.valid_until.clone(),
            schedule: self.schedule.clone(),
        }
    }

    fn rules(&self) -> Result<Rules, String> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err("the name is empty".into());
        }
        let when = |what: &str, s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            parse_when(s, crate::gallery::now_ms(), &local_zone())
                .map(Some)
                .map_err(|e| format!("{what}: {e}"))
        };
        let card = self.external_id.trim();
        Ok(Rules {
            name: name.to_owned(),
            external_id: (!card.is_empty()).then(|| card.to_owned()),
            enabled: self.enabled.is_some(),
            valid_from: when("valid from", &self.valid_from)?,
            valid_until: when("valid until", &self.valid_until)?,
            schedule: parse_schedule(&self.schedule)?,
        })
    }

    pub fn new_person(&self) -> Result<NewPerson, String> {
        let r = self.rules()?;
        let id = self.id.trim();
        Ok(NewPerson {
            id: (!id.is_empty()).then(|| id.to_owned()),
            name: r.name,
            external_id: r.external_id,
            metadata: Default::default(),
            enabled: Some(r.enabled),
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            schedule: r.schedule,
        })
    }

    /// Every rule of the form (an empty field clears it); metadata is left as it is.
    pub fn patch(&self) -> Result<PersonPatch, String> {
        let r = self.rules()?;
        Ok(PersonPatch {
            name: Some(r.name),
            external_id: Some(r.external_id),
            metadata: None,
            enabled: Some(r.enabled),
            valid_from: Some(r.valid_from),
            valid_until: Some(r.valid_until),
            schedule: Some(r.schedule),
        })
    }
}

struct Rules {
    name: String,
    external_id: Option<String>,
    enabled: bool,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    schedule: Vec<Window>,
}

/// The form of a stored person, for editing.
pub fn view_of(p: &Person) -> FormView {
    FormView {
        id: p.id.clone(),
        name: p.name.clone(),
        external_id: p.external_id.clone().unwrap_or_default(),
        enabled: p.enabled,
        valid_from: p.valid_from.map(datetime_local).unwrap_or_default(),
        valid_until: p.valid_until.map(datetime_local).unwrap_or_default(),
        schedule: schedule_text(&p.schedule),
    }
}

/// The empty form of a new person (enabled).
pub fn blank() -> FormView {
    FormView {
        id: String::new(),
        name: String::new(),
        external_id: String::new(),
        enabled: true,
        valid_from: String::new(),
        valid_until: String::new(),
        schedule: String::new(),
    }
}

/// `YYYY-MM-DDTHH:MM`, local: the value of an `<input type="datetime-local">`.
pub fn datetime_local(ms: i64) -> String {
    datetime_local_in(ms, &local_zone())
}

fn datetime_local_in(ms: i64, zone: &TimeZone) -> String {
    local_datetime(ms, zone)
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One window per line: `mon-fri 08:00-18:00`, `sat,sun 10:00-14:00`, `daily 07:00-24:00`.
pub fn parse_schedule(text: &str) -> Result<Vec<Window>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            format!(
                "schedule line {} ({line:?}): {why}; write e.g. \"mon-fri 08:00-18:00\"",
                n + 1
            )
        };
        let (days, times) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("days, a space, then from-until"))?;
        let (from, until) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("the times are from-until"))?;
        let mut list: Vec<String> = Vec::new();
        for part in days.to_ascii_lowercase().split(',') {
            let part = part.trim();
            if part == "daily" || part == "every" {
                list.extend(DAYS.iter().map(|d| (*d).to_owned()));
                continue;
            }
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let ia = DAYS.iter().position(|d| *d == a.trim());
            let ib = DAYS.iter().position(|d| *d == b.trim());
            let (Some(ia), Some(ib)) = (ia, ib) else {
                return Err(bad("days are mon, tue, wed, thu, fri, sat, sun or daily"));
            };
            if ia > ib {
                return Err(bad("a day range runs forwards (mon-fri)"));
            }
            list.extend(DAYS[ia..=ib].iter().map(|d| (*d).to_owned()));
        }
        list.dedup();
        out.push(Window {
            days: list,
            from: from.trim().to_owned(),
            until: until.trim().to_owned(),
        });
    }
    Ok(out)
}

/// The schedule as the form shows it (consecutive days as a range).
pub fn schedule_text(windows: &[Window]) -> String {
    let mut lines = Vec::new();
    for w in windows {
        let mut idx: Vec<usize> = w
            .days
            .iter()
            .filter_map(|d| DAYS.iter().position(|x| x == d))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let days = if idx.len() == 7 {
            "daily".to_owned()
        } else {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < idx.len() {
                let mut j = i;
                while j + 1 < idx.len() && idx[j + 1] == idx[j] + 1 {
                    j += 1;
                }
                parts.push(if j >= i + 2 {
                    format!("{}-{}", DAYS[idx[i]], DAYS[idx[j]])
                } else if j == i + 1 {
                    format!("{},{}", DAYS[idx[i]], DAYS[idx[j]])
                } else {
                    DAYS[idx[i]].to_owned()
                });
                i = j + 1;
            }
            parts.join(",")
        };
        lines.push(format!("{days} {}-{}", w.from, w.until));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip() {
        let w = parse_schedule("mon-fri 08:00-18:00\n\nsat,sun 10:00-14:00\ndaily 07:00-24:00")
            .unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].days, ["mon", "tue", "wed", "thu", "fri"]);
        assert_eq!(
            (w[0].from.as_str(), w[0].until.as_str()),
            ("08:00", "18:00")
        );
        assert_eq!(w[1].days, ["sat", "sun"]);
        assert_eq!(w[2].days.len(), 7);
        assert_eq!(
            schedule_text(&w),
            "mon-fri 08:00-18:00\nsat,sun 10:00-14:00\ndaily 07:00-24:00"
        );
        for bad in [
            "mon",
            "funday 08:00-09:00",
            "fri-mon 08:00-09:00",
            "mon 0800",
        ] {
            let e = parse_schedule(bad).unwrap_err();
            assert!(e.contains("schedule line 1"), "{e}");
        }
    }

    #[test]
    fn datetime_local_is_what_parse_when_reads_back() {
        let zone = TimeZone::fixed(jiff::tz::Offset::constant(1));
        let ms = 1_796_000_000_000; // some time in 2026
        let text = datetime_local_in(ms, &zone);
        assert_eq!(text.len(), 16);
        let back = parse_when(&text, ms, &zone).unwrap();
        assert_eq!(back, ms - ms.rem_euclid(60_000));
    }

    #[test]
    fn the_form_becomes_a_patch_that_clears_empty_fields() {
        let f = PersonForm {
            name: " Ada ".into(),
            enabled: None,
            schedule: "mon 09:00-10:00".into(),
            ..Default::default()
        };
        let p = f.patch().unwrap();
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.enabled, Some(false));
        assert_eq!(p.external_id, Some(None));
        assert_eq!(p.valid_until, Some(None));
        assert_eq!(p.schedule.as_ref().map(Vec::len), Some(1));
        assert!(PersonForm::default().new_person().is_err(), "no name");
    }
}
