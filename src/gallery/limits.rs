//! What a client may store about a person: the documented character set of ids, and bounds on
//! every field, so that one request cannot make a record (or a page of them) huge.
//!
//! | field | limit |
//! | --- | --- |
//! | `id` | 1-64 characters of `A-Z a-z 0-9 . _ -`, starting with a letter, a digit or `_` (so never `.`, `..` or a hidden name); not a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`, any case, with or without an extension) |
//! | `name` | 1-200 characters, no control characters |
//! | `external_id` | 1-64 characters, no control characters |
//! | `metadata` | at most [`MAX_METADATA_BYTES`] as JSON |
//! | `schedule` | at most [`MAX_WINDOWS`] windows, each with 1-7 distinct days |

use super::{GalleryError, Person, Result};

/// Longest person id, in bytes (ASCII).
pub const MAX_ID_BYTES: usize = 64;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest external id, in bytes.
pub const MAX_EXTERNAL_ID_BYTES: usize = 64;
/// Largest `metadata` object, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Most windows in a weekly schedule.
pub const MAX_WINDOWS: usize = 32;

/// Names Windows reserves for devices: a file or folder named after a person id (an export,
/// an enrollment folder) must never be one of them.
const DEVICE_NAMES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

fn is_device_name(id: &str) -> bool {
    let stem = id.split('.').next().unwrap_or(id).to_ascii_uppercase();
    if DEVICE_NAMES.contains(&stem.as_str()) {
        return true;
    }
    let b = stem.as_bytes();
    b.len() == 4
        && (stem.starts_with("COM") || stem.starts_with("LPT"))
        && (b'1'..=b'9').contains(&b[3])
}

/// Person ids: see the module documentation.
pub fn check_person_id(id: &str) -> Result<()> {
    let charset = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !charset {
        return Err(GalleryError::Invalid(format!(
            "person id {id:?}: use 1-{MAX_ID_BYTES} characters of letters, digits, '.', '_' and \
             '-', starting with a letter, a digit or '_'"
        )));
    }
    if is_device_name(id) {
        return Err(GalleryError::Invalid(format!(
            "person id {id:?} is a device name on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9): \
             choose another"
        )));
    }
    Ok(())
}

fn check_text(field: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        return Err(GalleryError::Invalid(format!(
            "{field} contains a control character (such as a NUL byte or a line break)"
        )));
    }
    Ok(())
}

/// The bounds on a person's fields (the id is checked by [`check_person_id`]).
pub fn check_person(p: &Person) -> Result<()> {
    check_text("name", &p.name)?;
    if p.name.chars().count() > MAX_NAME_CHARS {
        return Err(GalleryError::Invalid(format!(
            "name must be 1-{MAX_NAME_CHARS} characters"
        )));
    }
    if let Some(e) = &p.external_id {
        check_text("external_id", e)?;
        if e.len() > MAX_EXTERNAL_ID_BYTES {
            return Err(GalleryError::Invalid(format!(
                "external_id must be 1-{MAX_EXTERNAL_ID_BYTES} characters"
            )));
        }
    }
    let metadata = serde_json::to_vec(&p.metadata)
        .map_err(|e| GalleryError::Invalid(format!("metadata: {e}")))?
        .len();
    if metadata > MAX_METADATA_BYTES {
        return Err(GalleryError::Invalid(format!(
            "metadata is {metadata} bytes as JSON; at most {MAX_METADATA_BYTES} are kept per person"
        )));
    }
    if p.schedule.len() > MAX_WINDOWS {
        return Err(GalleryError::Invalid(format!(
            "schedule has {} windows; at most {MAX_WINDOWS}",
            p.schedule.len()
        )));
    }
    for w in &p.schedule {
        let mut days = w.days.clone();
        days.sort();
        days.dedup();
        if w.days.len() > 7 || days.len() != w.days.len() {
            return Err(GalleryError::Invalid(format!(
                "schedule window {}-{}: list each day at most once (at most 7 days)",
                w.from, w.until
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{NewPerson, record::Window};

    #[test]
    fn ids_keep_to_the_documented_set() {
        for ok in [
            "alice",
            "a",
            "A-1",
            "_x",
            "bob.smith",
            "x..y",
            "0",
            "console",
            "com10",
        ] {
            assert!(check_person_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "\u{0}",
            "a\u{0}",
            "a b",
            "a/b",
            "é",
            "CON",
            "con",
            "nul",
            "Nul.txt",
            "aux.tar.gz",
            "COM1",
            "lpt9",
            "prn",
        ] {
            assert!(check_person_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_person_id(&"a".repeat(64)).is_ok());
        assert!(check_person_id(&"a".repeat(65)).is_err());
    }

    fn person(f: impl FnOnce(&mut NewPerson)) -> Result<Person> {
        let mut n = NewPerson {
            name: "Alice".into(),
            ..NewPerson::default()
        };
        f(&mut n);
        Person::from_new("alice".into(), n, 1)
    }

    #[test]
    fn fields_are_bounded() {
        assert!(person(|_| {}).is_ok());
        assert!(person(|n| n.name = "\u{0}".into()).is_err());
        assert!(person(|n| n.name = "Al\nice".into()).is_err());
        assert!(person(|n| n.external_id = Some("12\u{7}".into())).is_err());
        assert!(
            person(|n| {
                n.metadata
                    .insert("k".into(), serde_json::json!("x".repeat(8000)));
            })
            .is_ok()
        );
        let e = person(|n| {
            n.metadata
                .insert("k".into(), serde_json::json!("x".repeat(9000)));
        })
        .unwrap_err();
        assert!(e.to_string().contains("metadata"), "{e}");
        let window = |days: &[&str]| Window {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: "08:00".into(),
            until: "18:00".into(),
        };
        assert!(person(|n| n.schedule = vec![window(&["mon"]); 32]).is_ok());
        assert!(person(|n| n.schedule = vec![window(&["mon"]); 33]).is_err());
        assert!(person(|n| n.schedule = vec![window(&["mon", "mon"])]).is_err());
        assert!(person(|n| n.schedule = vec![window(&["mon"; 1000])]).is_err());
    }
}
