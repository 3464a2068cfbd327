use super::*;
use crate::crypto::DeviceKey;
use crate::gallery::record::NewPerson;
use crate::gallery::{normalised, now_ms};

/// One device key for the whole test binary.
pub(crate) fn key() -> DeviceKey {
    static KEY: std::sync::OnceLock<DeviceKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| DeviceKey::generate().unwrap()).clone()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "facegate-cache-{name}-{}-{}",
        std::process::id(),
        now_ms()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn v(seed: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| ((i * 31 + seed * 17) % 13) as f32 - 6.0)
        .collect()
}

#[test]
fn a_gallery_in_use_is_named_and_its_model_read_without_creating_one() {
    let dir = tmp("in-use");
    let model = ModelTag::new("m", 8);
    assert_eq!(Cache::recorded_model(&dir).unwrap(), None);
    assert!(
        !dir.exists(),
        "reading the model of no gallery creates nothing"
    );
    let c = Cache::open(&dir, &model, &key()).unwrap();
    match Cache::open(&dir, &model, &key()) {
        Err(e @ GalleryError::InUse { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(&dir.display().to_string()) && m.contains("in use"),
                "{m}"
            );
        }
        Err(e) => panic!("expected InUse, got {e}"),
        Ok(_) => panic!("opened a gallery twice"),
    }
    assert!(matches!(
        Cache::recorded_model(&dir),
        Err(GalleryError::InUse { .. })
    ));
    drop(c);
    assert_eq!(Cache::recorded_model(&dir).unwrap(), Some(model));
}

#[test]
fn persists_and_reloads_the_matrix() {
    let dir = tmp("reload");
    let model = ModelTag::new("m", 8);
    let (alice, ids) = {
        let c = Cache::open(&dir, &model, &key()).unwrap();
        let p = c
            .create_person_local(
                NewPerson {
                    name: "Alice".into(),
                    ..NewPerson::default()
                },
                true,
            )
            .unwrap();
        let ids = c
            .add_templates_local(&p.id, vec![v(1, 8), v(2, 8)], true)
            .unwrap();
        assert_eq!(c.outbox_len(), 2);
        (p.id, ids)
    };
    let c = Cache::open(&dir, &model, &key()).unwrap();
    assert_eq!(c.template_count(), 2);
    assert_eq!(c.template_ids(&alice).len(), 2);
    let probe = normalised(&v(2, 8), 8).unwrap();
    let hits = c.search(&probe, 3);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].person, alice);
    assert_eq!(hits[0].template, ids[1]);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let removed = c.delete_person_local(&alice, true).unwrap();
    assert_eq!((removed.persons, removed.templates), (1, 2));
    // The person's two pending creations are dropped; the tombstone is queued.
    assert_eq!(removed.outbox_entries, 2);
    assert_eq!(c.outbox_len(), 1);
    assert!(c.search(&probe, 3).is_empty());
    assert!(c.template(ids[0]).unwrap().is_none());
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_a_gallery_of_another_model() {
    let dir = tmp("model");
    drop(Cache::open(&dir, &ModelTag::new("mobilefacenet", 192), &key()).unwrap());
    let err = Cache::open(&dir, &ModelTag::new("arcface-r50", 512), &key())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("mobilefacenet") && msg.contains("arcface-r50"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejects_bad_input_without_writing() {
    let dir = tmp("bad");
    let c = Cache::open(&dir, &ModelTag::new("m", 4), &key()).unwrap();
    assert!(matches!(
        c.add_templates_local("nobody", vec![vec![1.0; 4]], false),
        Err(GalleryError::UnknownPerson(_))
    ));
    let p = c
        .create_person_local(
            NewPerson {
                id: Some("carol".into()),
                name: "Carol".into(),
                ..NewPerson::default()
            },
            false,
        )
        .unwrap();
    assert!(matches!(
        c.add_templates_local(&p.id, vec![vec![1.0; 5]], false),
        Err(GalleryError::Dimension { .. })
    ));
    assert!(
        c.add_templates_local(&p.id, vec![vec![0.0; 4]], false)
            .is_err()
    );
    assert!(matches!(
        c.create_person_local(
            NewPerson {
                id: Some("carol".into()),
                name: "Other".into(),
                ..NewPerson::default()
            },
            false
        ),
        Err(GalleryError::PersonExists(_))
    ));
    assert!(
        c.create_person_local(
            NewPerson {
                id: Some("bad id!".into()),
                name: "X".into(),
                ..NewPerson::default()
            },
            false
        )
        .is_err()
    );
    assert_eq!(c.template_count(), 0);
    assert_eq!(c.person_count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
