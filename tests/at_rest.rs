//! Biometric data at rest (issue 16): after enrolling persons, no file under the gallery or
//! the audit log holds a template (as little-endian f32), a name, a card number or a face
//! crop in clear; after a delete and a restart, the deleted person's records (captured from
//! the files before the delete, as stale sled pages would keep them) open under no key the
//! device holds. A wrong device key is refused at open, naming it, and changes nothing.

mod common;

use std::path::{Path, PathBuf};

use facegate::access::{Action, AuditLog, EventSource, NewEvent, Outcome};
use facegate::crypto::{DeviceKey, KeySlots};
use facegate::gallery::{Cache, ModelTag, NewPerson, normalised};

const DIM: usize = 192;
const PERSONS: usize = 12;

fn vector(i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|j| (((i * 7919 + j * 104_729) % 1009) as f32 / 1009.0) - 0.5)
        .collect()
}

fn name(i: usize) -> String {
    format!("Zelda Quixote-Marchetti {i}")
}

fn card(i: usize) -> String {
    format!("CARD-93{i:05}")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file under `dirs`, whole.
fn all_bytes(dirs: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn find(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Option<PathBuf> {
    files
        .iter()
        .find(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p.clone())
}

/// The template's stored floats, as little-endian bytes: 8 consecutive values from a few
/// places (32 bytes each: no accidental match).
fn float_needles(i: usize) -> Vec<Vec<u8>> {
    let v = normalised(&vector(i), DIM).unwrap();
    [0, 64, 184]
        .iter()
        .map(|&at| v[at..at + 8].iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect()
}

fn open_cache(root: &Path) -> Cache {
    Cache::open(
        &root.join("gallery"),
        &ModelTag::new("test-model", DIM),
        &common::device_key(root),
    )
    .unwrap()
}

#[test]
fn nothing_personal_in_clear_and_a_deleted_person_is_shredded() {
    let root = common::tmpdir("at-rest");
    let key = common::device_key(&root);
    let crop = std::fs::read(common::fixture("obama_1.jpg")).unwrap();
    {
        let cache = open_cache(&root);
        for i in 0..PERSONS {
            cache
                .create_person_local(
                    NewPerson {
                        id: Some(format!("p{i}")),
                        name: name(i),
                        external_id: Some(card(i)),
                        ..NewPerson::default()
                    },
                    true,
                )
                .unwrap();
            cache
                .add_templates_local(&format!("p{i}"), vec![vector(i)], true)
                .unwrap();
        }
        let log = AuditLog::open(&root.join("audit"), 1000, &key).unwrap();
        for i in 0..PERSONS {
            log.append(
                NewEvent::new(Action::Access, Outcome::Granted, EventSource::Door)
                    .person(format!("p{i}"))
                    .score(0.8)
                    .reason(format!("welcome {}", name(i)))
                    .face_jpeg(crop.clone()),
            )
            .unwrap();
        }
        log.flush().unwrap();
    }
    let data = [root.join("gallery"), root.join("audit")];
    let files = all_bytes(&data);
    assert!(files.len() >= 6, "{} files", files.len());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!("{} files, {total} bytes searched", files.len());
    // The search works: the same needles are found in a file that has them.
    let mut control = Vec::new();
    control.extend_from_slice(name(3).as_bytes());
    control.extend(float_needles(3)[1].clone());
    let ctrl = vec![(PathBuf::from("control"), control)];
    assert!(find(&ctrl, name(3).as_bytes()).is_some());
    assert!(find(&ctrl, &float_needles(3)[1]).is_some());
    for i in 0..PERSONS {
        assert_eq!(find(&files, name(i).as_bytes()), None, "name {i} in clear");
        assert_eq!(find(&files, card(i).as_bytes()), None, "card {i} in clear");
        for n in float_needles(i) {
            assert_eq!(find(&files, &n), None, "template floats of {i} in clear");
        }
    }
    let mid = crop.len() / 2;
    assert_eq!(
        find(&files, &crop[mid..mid + 64]),
        None,
        "face crop in clear"
    );
    assert_eq!(find(&files, b"Zelda"), None);
    // Files 0600, folders 0700.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (p, _) in &files {
            let m = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{}", p.display());
        }
        for d in &data {
            let m = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{}", d.display());
        }
    }

    // The sealed records of p0..p5 as the files hold them now (what stale pages keep).
    let doomed: Vec<String> = (0..PERSONS / 2).map(|i| format!("p{i}")).collect();
    let mut captured = Vec::new();
    {
        let db =
            facegate::gallery::sled_db::open(&root.join("gallery"), sled::Mode::LowSpace).unwrap();
        let persons = db.open_tree("persons").unwrap();
        let templates = db.open_tree("templates").unwrap();
        for id in &doomed {
            captured.push(persons.get(id).unwrap().unwrap().to_vec());
        }
        for kv in templates.iter() {
            let (_, v) = kv.unwrap();
            let owner_len = u16::from_le_bytes([v[0], v[1]]) as usize;
            let owner = std::str::from_utf8(&v[2..2 + owner_len]).unwrap();
            if doomed.iter().any(|d| d == owner) {
                captured.push(v[2 + owner_len..].to_vec());
            }
        }
    }
    assert_eq!(captured.len(), doomed.len() * 2);
    {
        let cache = open_cache(&root);
        // Before the delete the device key opens them (the check below can fail).
        assert_eq!(cache.get_person("p0").unwrap().unwrap().name, name(0));
        for id in &doomed {
            cache.delete_person_local(id, true).unwrap();
        }
        let log = AuditLog::open(&root.join("audit"), 1000, &key).unwrap();
        // All crops expire.
        let log = log
            .with_crop_retention(facegate::access::CropRetention {
                max_age_ms: 0,
                max_count: 0,
            })
            .unwrap();
        assert_eq!(log.crop_count(), 0);
    }
    // Restart.
    let cache = open_cache(&root);
    assert_eq!(cache.person_count(), PERSONS - doomed.len());
    assert_eq!(cache.get_person("p11").unwrap().unwrap().name, name(11));
    drop(cache);
    // Every key the device still holds, against every captured record.
    let slots = KeySlots::open(&root.join("gallery/keyslots"), &key).unwrap();
    let mut keys = vec![slots.store_key().unwrap()];
    for s in slots.used() {
        keys.push(slots.key(s).unwrap());
    }
    assert_eq!(keys.len(), 1 + PERSONS - doomed.len());
    let mut tried = 0;
    for rec in &captured {
        // A person record is `slot | sealed`, a template's sealed part starts at once.
        for body in [&rec[..], rec.get(4..).unwrap_or_default()] {
            for k in &keys {
                // Any associated data: the key itself must not open it.
                for aad in [&b""[..], b"facegate person\0p0"] {
                    assert!(k.open(aad, body, "captured").is_err());
                    tried += 1;
                }
            }
        }
    }
    eprintln!("{tried} decryption attempts of deleted records, none opened");
    // And the slot of a deleted person is zeros.
    let raw = std::fs::read(root.join("gallery/keyslots")).unwrap();
    let p0_slot = u32::from_le_bytes(captured[0][..4].try_into().unwrap()) as usize;
    let at = 64 + p0_slot * facegate::crypto::slots::SLOT;
    assert!(
        raw[at..at + facegate::crypto::slots::SLOT]
            .iter()
            .all(|&b| b == 0)
    );
    // The expired crops' keys are gone too (only the log's own key is left).
    let crop_slots = KeySlots::open(&root.join("audit/keyslots"), &key).unwrap();
    assert!(crop_slots.used().is_empty(), "{:?}", crop_slots.used());
    let files = all_bytes(&data);
    for i in 0..PERSONS {
        assert_eq!(find(&files, name(i).as_bytes()), None);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_wrong_or_missing_key_is_named_at_open_and_changes_nothing() {
    let root = common::tmpdir("at-rest-key");
    {
        let cache = open_cache(&root);
        cache
            .create_person_local(
                NewPerson {
                    id: Some("ada".into()),
                    name: "Ada".into(),
                    ..NewPerson::default()
                },
                false,
            )
            .unwrap();
        cache
            .add_templates_local("ada", vec![vector(1)], false)
            .unwrap();
        let log = AuditLog::open(&root.join("audit"), 10, &common::device_key(&root)).unwrap();
        log.append(
            NewEvent::new(Action::Access, Outcome::Granted, EventSource::Door).person("ada"),
        )
        .unwrap();
    }
    let other = DeviceKey::generate().unwrap();
    let e = Cache::open(
        &root.join("gallery"),
        &ModelTag::new("test-model", DIM),
        &other,
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("another device key"), "{e}");
    let e = AuditLog::open(&root.join("audit"), 10, &other)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("another device key"), "{e}");
    // The key-slot file gone: named, not a new empty gallery.
    std::fs::rename(root.join("gallery/keyslots"), root.join("keyslots.bak")).unwrap();
    let e = Cache::open(
        &root.join("gallery"),
        &ModelTag::new("test-model", DIM),
        &common::device_key(&root),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("keyslots is missing"), "{e}");
    std::fs::rename(root.join("keyslots.bak"), root.join("gallery/keyslots")).unwrap();
    // With the right key, everything is there.
    let cache = open_cache(&root);
    assert_eq!(cache.get_person("ada").unwrap().unwrap().name, "Ada");
    assert_eq!(cache.template_count(), 1);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_first_start_makes_the_key_and_a_later_start_without_it_is_refused() {
    let root = common::tmpdir("at-rest-first");
    let gallery = facegate::gallery::GalleryConfig {
        path: root.join("data/gallery"),
        key_file: root.join("etc/device.key"),
        ..Default::default()
    };
    let milvus = facegate::gallery::MilvusConfig::default();
    let model = ModelTag::new("test-model", DIM);
    {
        let opened = facegate::gallery::open(&gallery, &milvus, &model, 0.5).unwrap();
        opened
            .cache
            .create_person_local(
                NewPerson {
                    id: Some("ada".into()),
                    name: "Ada".into(),
                    ..NewPerson::default()
                },
                false,
            )
            .unwrap();
    }
    assert!(
        root.join("etc/device.key").is_file(),
        "made at the first start"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("etc")), 0o700);
        assert_eq!(mode(&root.join("data")), 0o700);
    }
    // The key lost, the gallery there: an error naming the key, not a new key.
    std::fs::rename(root.join("etc/device.key"), root.join("lost.key")).unwrap();
    let e = facegate::gallery::open(&gallery, &milvus, &model, 0.5)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("no device key"), "{e}");
    assert!(!root.join("etc/device.key").exists());
    std::fs::rename(root.join("lost.key"), root.join("etc/device.key")).unwrap();
    let opened = facegate::gallery::open(&gallery, &milvus, &model, 0.5).unwrap();
    assert_eq!(opened.cache.get_person("ada").unwrap().unwrap().name, "Ada");
    drop(opened);
    let _ = std::fs::remove_dir_all(&root);
}
