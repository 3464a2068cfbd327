//! An acknowledged enrollment survives `kill -9`: a child process enrolls templates one at a
//! time and prints each id once `add_templates` has returned; the parent kills it with SIGKILL
//! in the middle and reopens the gallery. With sealed records: every few templates the child
//! also creates a person (a new key slot written and synced before the record), and a
//! plaintext gallery being converted is killed at several points of its conversion.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use facegate::gallery::outbox::Op;
use facegate::gallery::{Cache, ModelTag, NewPerson, Person, Template};

const DIM: usize = 192;
const CHILD_ENV: &str = "FACEGATE_DURABILITY_CHILD_DIR";

fn vector(i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|j| (((i * 7919 + j * 104_729) % 1009) as f32 / 1009.0) - 0.5)
        .collect()
}

/// The child's side: runs only when the parent re-executes this test binary with CHILD_ENV.
#[test]
fn durability_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let key = common::device_key(dir.parent().expect("parent"));
    let cache = Cache::open(&dir, &ModelTag::new("test-model", DIM), &key).expect("open");
    let person = cache
        .create_person_local(
            NewPerson {
                id: Some("victim".into()),
                name: "Victim".into(),
                ..NewPerson::default()
            },
            true,
        )
        .expect("person");
    println!("person {}", person.id);
    for i in 0.. {
        let ids = cache
            .add_templates_local("victim", vec![vector(i)], true)
            .expect("enroll");
        println!("ack {} {i}", ids[0]);
        if i % 5 == 0 {
            let p = cache
                .create_person_local(
                    NewPerson {
                        id: Some(format!("p{i}")),
                        name: format!("Person {i}"),
                        external_id: Some(format!("card-{i}")),
                        ..NewPerson::default()
                    },
                    true,
                )
                .expect("person");
            println!("person {}", p.id);
        }
    }
}

#[test]
fn acknowledged_enrollments_survive_kill_9() {
    let dir = common::tmpdir("durability").join("gallery");
    common::device_key(dir.parent().unwrap());
    let exe = std::env::current_exe().expect("test binary");
    // The child's stderr goes to a file, shown when an assertion fails (a panic in the child
    // would otherwise be invisible).
    let stderr_path = dir.parent().unwrap().join("child-stderr.txt");
    let stderr_file = std::fs::File::create(&stderr_path).expect("stderr file");
    let child_said = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "durability_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(stderr_file)
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    // Every acknowledgement the child printed: the ones read before the kill, and the ones it
    // printed meanwhile, still in the pipe (stdout is line-buffered, so a printed line was
    // acknowledged to the caller before it was written).
    let mut acked: Vec<(u64, usize)> = Vec::new();
    let mut persons: Vec<String> = Vec::new();
    let mut person_acked = false;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains("person victim") {
            person_acked = true;
        } else if let Some(p) = line.strip_prefix("person ") {
            persons.push(p.to_owned());
        }
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut it = rest.split_whitespace();
            let id: u64 = it.next().unwrap().parse().unwrap();
            let i: usize = it.next().unwrap().parse().unwrap();
            acked.push((id, i));
            // Kill in the middle of the stream of writes, not between runs.
            if acked.len() == 150 && !killed {
                child.kill().expect("SIGKILL");
                killed = true;
            }
        }
    }
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "the child was killed, not finished; it said: {}",
        child_said()
    );
    assert!(person_acked, "the child said: {}", child_said());
    assert!(
        killed && acked.len() >= 150,
        "{} acknowledged; the child said: {}",
        acked.len(),
        child_said()
    );
    eprintln!(
        "{} enrollments acknowledged before the kill took effect",
        acked.len()
    );

    let key = common::device_key(dir.parent().unwrap());
    let cache =
        Cache::open(&dir, &ModelTag::new("test-model", DIM), &key).expect("reopen after kill -9");
    assert!(cache.get_person("victim").unwrap().is_some());
    assert!(
        persons.len() >= 25,
        "{} persons acknowledged",
        persons.len()
    );
    for p in &persons {
        let got = cache.get_person(p).unwrap();
        assert!(got.is_some(), "acknowledged person {p} lost");
        assert_eq!(got.unwrap().external_id, Some(format!("card-{}", &p[1..])));
    }
    let stored = cache.template_ids("victim");
    for (id, i) in &acked {
        assert!(
            stored.contains(id),
            "acknowledged template {id} (#{i}) lost"
        );
        let t = cache.template(*id).unwrap().expect("record");
        // The stored vector is the normalised one that was sent.
        let v = vector(*i);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos: f32 = t.embedding.iter().zip(&v).map(|(a, b)| a * b / n).sum();
        assert!(
            (cos - 1.0).abs() < 1e-5,
            "template {id} damaged: cosine {cos}"
        );
    }
    // At most the one write in flight at the kill can be there beyond the acknowledged ones.
    assert!(stored.len() <= acked.len() + 1, "{} stored", stored.len());
    // Every stored template and person still has its outbox entry (none was confirmed by a
    // central store).
    let stored_persons = cache.person_count();
    assert!(
        stored_persons <= persons.len() + 2,
        "{stored_persons} persons"
    );
    assert_eq!(cache.outbox_len(), stored.len() + stored_persons);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

const MIGRATE_ENV: &str = "FACEGATE_MIGRATION_CHILD_DIR";
const PLAIN_PERSONS: usize = 3000;

/// A gallery as facegate wrote it before sealing: plaintext records (format 1), written with
/// sled directly.
fn write_plaintext_gallery(dir: &std::path::Path) {
    let db = facegate::gallery::sled_db::open(dir, sled::Mode::LowSpace).unwrap();
    let meta = db.open_tree("meta").unwrap();
    meta.insert(
        "model",
        serde_json::to_vec(&ModelTag::new("test-model", DIM)).unwrap(),
    )
    .unwrap();
    meta.insert("format", "facegate-gallery-1").unwrap();
    let persons = db.open_tree("persons").unwrap();
    let templates = db.open_tree("templates").unwrap();
    let outbox = db.open_tree("outbox").unwrap();
    for i in 0..PLAIN_PERSONS {
        let p = Person::from_new(
            format!("m{i}"),
            NewPerson {
                name: format!("Migrant {i}"),
                ..NewPerson::default()
            },
            1,
        )
        .unwrap();
        persons
            .insert(p.id.as_bytes(), p.to_json().unwrap())
            .unwrap();
        let v = vector(i);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let t = Template {
            id: i as u64 + 1,
            person: p.id.clone(),
            embedding: v.iter().map(|x| x / n).collect(),
            updated_ms: 1,
        };
        templates.insert(t.id.to_be_bytes(), t.encode()).unwrap();
        if i % 100 == 0 {
            let op = Op::UpsertPerson { person: p };
            outbox
                .insert((i as u64).to_be_bytes(), op.encode().unwrap())
                .unwrap();
        }
    }
    db.flush().unwrap();
}

#[test]
fn migration_child() {
    let Ok(dir) = std::env::var(MIGRATE_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let key = common::device_key(dir.parent().unwrap());
    println!("start");
    Cache::open(&dir, &ModelTag::new("test-model", DIM), &key).expect("open");
    println!("done");
}

#[test]
fn a_conversion_killed_at_any_point_loses_nothing() {
    let root = common::tmpdir("migration-kill");
    let dir = root.join("gallery");
    write_plaintext_gallery(&dir);
    // Made here, before any child can be killed while making it.
    common::device_key(&root);
    // Kill points spread over the conversion (its length depends on the machine's load).
    let finished_in_child = common::kill_at_points(
        "migration_child",
        MIGRATE_ENV,
        &dir,
        &root.join("gallery.migrating"),
        &[30, 150, 400, 900, 2000, 4000],
        || {
            // Whatever the point, one of the two folders holds everything.
            let plain = facegate::gallery::migrate::is_plaintext(&dir).unwrap();
            assert!(
                plain || dir.exists() || root.join("gallery.migrating").exists(),
                "neither the original nor the copy is there"
            );
        },
    );
    // The next open finishes (or redoes) the conversion.
    let key = common::device_key(&root);
    let cache = Cache::open(&dir, &ModelTag::new("test-model", DIM), &key).expect("open");
    assert_eq!(cache.person_count(), PLAIN_PERSONS);
    assert_eq!(cache.template_count(), PLAIN_PERSONS);
    assert_eq!(cache.outbox_len(), PLAIN_PERSONS / 100);
    for i in [0, 1, PLAIN_PERSONS / 2, PLAIN_PERSONS - 1] {
        let p = cache.get_person(&format!("m{i}")).unwrap().expect("person");
        assert_eq!(p.name, format!("Migrant {i}"));
        let t = cache.template(i as u64 + 1).unwrap().expect("template");
        let v = vector(i);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos: f32 = t.embedding.iter().zip(&v).map(|(a, b)| a * b / n).sum();
        assert!((cos - 1.0).abs() < 1e-5, "cosine {cos}");
    }
    assert!(!root.join("gallery.migrating").exists());
    assert!(!root.join("gallery.plaintext").exists());
    eprintln!("conversion finished inside a killed child: {finished_in_child}");
    drop(cache);
    let _ = std::fs::remove_dir_all(&root);
}
