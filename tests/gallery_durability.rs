//! An acknowledged enrollment survives `kill -9`: a child process enrolls templates one at a
//! time and prints each id once `add_templates` has returned; the parent kills it with SIGKILL
//! in the middle and reopens the gallery.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use facegate::gallery::{Cache, ModelTag, NewPerson};

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
    let cache = Cache::open(dir.as_ref(), &ModelTag::new("test-model", DIM)).expect("open");
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
    }
}

#[test]
fn acknowledged_enrollments_survive_kill_9() {
    let dir = common::tmpdir("durability");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "durability_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    // Every acknowledgement the child printed: the ones read before the kill, and the ones it
    // printed meanwhile, still in the pipe (stdout is line-buffered, so a printed line was
    // acknowledged to the caller before it was written).
    let mut acked: Vec<(u64, usize)> = Vec::new();
    let mut person_acked = false;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains("person victim") {
            person_acked = true;
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
    assert!(!status.success(), "the child was killed, not finished");
    assert!(person_acked);
    assert!(killed && acked.len() >= 150, "{} acknowledged", acked.len());
    eprintln!(
        "{} enrollments acknowledged before the kill took effect",
        acked.len()
    );

    let cache = Cache::open(&dir, &ModelTag::new("test-model", DIM)).expect("reopen after kill -9");
    assert!(cache.get_person("victim").unwrap().is_some());
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
    // Every stored template still has its outbox entry (none was confirmed by a central store).
    assert_eq!(cache.outbox_len(), stored.len() + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
