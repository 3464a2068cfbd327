//! The records a gallery holds: persons, templates, and the model they belong to.

use serde::{Deserialize, Serialize};

use super::{GalleryError, Result};

/// The embedding model a gallery's templates come from. Templates of different models are
/// never mixed: a cache or a Milvus collection belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTag {
    pub name: String,
    pub dim: usize,
}

impl ModelTag {
    pub fn new(name: &str, dim: usize) -> ModelTag {
        ModelTag {
            name: name.to_owned(),
            dim,
        }
    }
}

/// A weekly time window in which a person may enter (local time of the door).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days, as "mon" .. "sun".
    #[schema(schema_with = day_names)]
    pub days: Vec<String>,
    /// "HH:MM", inclusive.
    pub from: String,
    /// "HH:MM", exclusive; "24:00" for the end of the day.
    pub until: String,
}

/// A person who may be recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Person {
    pub id: String,
    pub name: String,
    /// An identifier from another system, such as a card number (sent on Wiegand).
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// A disabled person is recognised but refused.
    pub enabled: bool,
    /// Unix ms; before it the person is refused.
    #[serde(default)]
    pub valid_from: Option<i64>,
    /// Unix ms; from it on the person is refused.
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// Weekly schedule; empty = any time.
    #[serde(default)]
    pub schedule: Vec<Window>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a caller gives to create a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// Chosen by the caller, or generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub valid_from: Option<i64>,
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default)]
    pub schedule: Vec<Window>,
}

/// A partial update; absent fields are left as they are, `null` (`Some(None)`) clears an
/// optional field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "double_option")]
    pub external_id: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, with = "double_option")]
    pub valid_from: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    pub valid_until: Option<Option<i64>>,
    #[serde(default)]
    pub schedule: Option<Vec<Window>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl Person {
    pub fn from_new(id: String, new: NewPerson, now: i64) -> Result<Person> {
        let p = Person {
            id,
            name: new.name,
            external_id: new.external_id,
            metadata: new.metadata,
            enabled: new.enabled.unwrap_or(true),
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            schedule: new.schedule,
            created_ms: now,
            updated_ms: now,
        };
        p.check()?;
        Ok(p)
    }

    pub fn apply(&mut self, patch: PersonPatch, now: i64) -> Result<()> {
        if let Some(v) = patch.name {
            self.name = v;
        }
        if let Some(v) = patch.external_id {
            self.external_id = v;
        }
        if let Some(v) = patch.metadata {
            self.metadata = v;
        }
        if let Some(v) = patch.enabled {
            self.enabled = v;
        }
        if let Some(v) = patch.valid_from {
            self.valid_from = v;
        }
        if let Some(v) = patch.valid_until {
            self.valid_until = v;
        }
        if let Some(v) = patch.schedule {
            self.schedule = v;
        }
        self.updated_ms = now.max(self.updated_ms + 1);
        self.check()
    }

    /// Field checks shared by create and update.
    pub fn check(&self) -> Result<()> {
        super::check_person_id(&self.id)?;
        super::limits::check_person(self)?;
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(GalleryError::Invalid(
                "name must be 1-200 characters".into(),
            ));
        }
        if let Some(e) = &self.external_id
            && (e.is_empty() || e.len() > 64)
        {
            return Err(GalleryError::Invalid(
                "external_id must be 1-64 characters".into(),
            ));
        }
        if let (Some(a), Some(b)) = (self.valid_from, self.valid_until)
            && a >= b
        {
            return Err(GalleryError::Invalid(
                "valid_from must be before valid_until".into(),
            ));
        }
        for w in &self.schedule {
            check_window(w)?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| GalleryError::Corrupt(format!("person encode: {e}")))
    }

    pub fn from_json(b: &[u8]) -> Result<Person> {
        serde_json::from_slice(b).map_err(|e| GalleryError::Corrupt(format!("person record: {e}")))
    }
}

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The OpenAPI schema of [`Window::days`]: an array of [`DAYS`].
fn day_names() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(DAYS)),
        )
        .description(Some("Days, as \"mon\" .. \"sun\"."))
        .build()
}

/// Minutes since midnight of "HH:MM" (00:00-24:00).
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn check_window(w: &Window) -> Result<()> {
    if w.days.is_empty() {
        return Err(GalleryError::Invalid("schedule window without days".into()));
    }
    for d in &w.days {
        if !DAYS.contains(&d.as_str()) {
            return Err(GalleryError::Invalid(format!(
                "schedule day {d:?}: use one of {}",
                DAYS.join(", ")
            )));
        }
    }
    match (parse_hhmm(&w.from), parse_hhmm(&w.until)) {
        (Some(a), Some(b)) if a < b => Ok(()),
        _ => Err(GalleryError::Invalid(format!(
            "schedule window {}-{}: use HH:MM with from before until",
            w.from, w.until
        ))),
    }
}

/// A face template: one embedding of one person.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: u64,
    pub person: String,
    pub embedding: Vec<f32>,
    pub updated_ms: i64,
}

impl Template {
    /// Binary record: `u16 len | person | i64 updated_ms | f32 × dim` (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let p = self.person.as_bytes();
        let mut b = Vec::with_capacity(2 + p.len() + 8 + 4 * self.embedding.len());
        b.extend_from_slice(&(p.len() as u16).to_le_bytes());
        b.extend_from_slice(p);
        b.extend_from_slice(&self.updated_ms.to_le_bytes());
        for x in &self.embedding {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    }

    pub fn decode(id: u64, b: &[u8]) -> Result<Template> {
        let bad = || GalleryError::Corrupt(format!("template {id}: record of {} bytes", b.len()));
        let n =
            u16::from_le_bytes(b.get(..2).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
        let person = std::str::from_utf8(b.get(2..2 + n).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_owned();
        let t = b.get(2 + n..10 + n).ok_or_else(bad)?;
        let updated_ms = i64::from_le_bytes(t.try_into().map_err(|_| bad())?);
        let rest = &b[10 + n..];
        if !rest.len().is_multiple_of(4) {
            return Err(bad());
        }
        let embedding = rest
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Template {
            id,
            person,
            embedding,
            updated_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trip_and_damage() {
        let t = Template {
            id: 9,
            person: "alice".into(),
            embedding: vec![0.5, -0.25, 1.0],
            updated_ms: 1234,
        };
        let b = t.encode();
        assert_eq!(Template::decode(9, &b).unwrap(), t);
        assert!(Template::decode(9, &b[..b.len() - 1]).is_err());
        assert!(Template::decode(9, &b[..3]).is_err());
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let mut p = Person::from_new(
            "bob".into(),
            NewPerson {
                name: "Bob".into(),
                external_id: Some("1234".into()),
                ..NewPerson::default()
            },
            10,
        )
        .unwrap();
        let patch: PersonPatch = serde_json::from_str(r#"{"enabled": false}"#).unwrap();
        p.apply(patch, 20).unwrap();
        assert_eq!(p.external_id.as_deref(), Some("1234"));
        assert!(!p.enabled);
        let patch: PersonPatch = serde_json::from_str(r#"{"external_id": null}"#).unwrap();
        p.apply(patch, 30).unwrap();
        assert_eq!(p.external_id, None);
        assert_eq!(p.updated_ms, 30);
        let bad: PersonPatch = serde_json::from_str(r#"{"name": "  "}"#).unwrap();
        assert!(p.clone().apply(bad, 40).is_err());
        assert!(serde_json::from_str::<PersonPatch>(r#"{"nmae": "x"}"#).is_err());
    }

    #[test]
    fn schedule_windows_are_checked() {
        let w = |d: &str, a: &str, b: &str| Window {
            days: vec![d.into()],
            from: a.into(),
            until: b.into(),
        };
        assert!(check_window(&w("mon", "08:00", "18:00")).is_ok());
        assert!(check_window(&w("mon", "08:00", "24:00")).is_ok());
        assert!(check_window(&w("monday", "08:00", "18:00")).is_err());
        assert!(check_window(&w("mon", "18:00", "08:00")).is_err());
        assert!(check_window(&w("mon", "8h", "18:00")).is_err());
    }
}
