//! Milvus goes away mid-operation and comes back. This test starts its own real Milvus
//! instance (scripts/milvus, port 19541, its own data directory) so that stopping it does not
//! disturb the other tests.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facegate::gallery::milvus::MilvusStore;
use facegate::gallery::remote::RemoteStore;
use facegate::gallery::{
    Cache, Gallery, MilvusConfig, ModelTag, NewPerson, RemoteState, Source, Tiered,
};

const PORT: u16 = 19541;
const THRESHOLD: f32 = 0.4122;

fn milvus(args: &[&str]) {
    let script = common::repo().join("scripts/milvus");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .expect("run scripts/milvus");
    assert!(
        out.status.success(),
        "scripts/milvus {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Instance;

impl Instance {
    fn start(data: &Path) -> Instance {
        milvus(&["start", &PORT.to_string(), &data.display().to_string()]);
        Instance
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(common::repo().join("scripts/milvus"))
            .args(["stop", &PORT.to_string()])
            .output();
    }
}

fn unit(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..192)
        .map(|j| (((seed * 7919 + j * 104_729) % 1009) as f32 / 1009.0) - 0.5)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_continue_offline_and_the_outbox_replays() {
    // Needs the same set-up as the shared server (scripts/test installs and starts it).
    if common::milvus_url().is_none() {
        return;
    }
    let dir = common::tmpdir("outage");
    let data = dir.join("milvus");
    let url = format!("http://127.0.0.1:{PORT}");
    let cfg = MilvusConfig {
        url: url.clone(),
        collection_prefix: common::unique_prefix("outage"),
        search_timeout_ms: 500,
        write_timeout_ms: 60_000,
        breaker_failures: 2,
        breaker_cooldown_ms: 60_000,
        ..MilvusConfig::default()
    };
    let model = ModelTag::new("synthetic", 192);
    let cache =
        Arc::new(Cache::open(&dir.join("gallery"), &model, &common::device_key(&dir)).unwrap());
    let remote: Arc<dyn RemoteStore> = Arc::new(MilvusStore::new(&cfg, &model));
    let door = Tiered::new(Arc::clone(&cache), Arc::clone(&remote), &cfg, THRESHOLD);

    let server = Instance::start(&data);
    door.sync().await.expect("connect");
    door.create_person(NewPerson {
        id: Some("p1".into()),
        name: "Present".into(),
        ..NewPerson::default()
    })
    .await
    .unwrap();
    let w1 = door.add_templates("p1", vec![unit(1)]).await.unwrap();
    assert!(w1.remote_confirmed);
    assert_eq!(remote.count_templates().await.unwrap(), 1);

    // Milvus goes away.
    drop(server);

    // Decisions continue from the cache, without waiting on Milvus.
    let t = Instant::now();
    let id = door.identify(&unit(1), 1).await.unwrap();
    assert_eq!(id.candidates[0].person, "p1");
    assert_eq!(id.source, Source::Cache);
    // An unknown face asks Milvus, which fails within the search timeout; after
    // `breaker_failures` failures the breaker stops asking at all.
    for _ in 0..3 {
        let id = door.identify(&unit(99), 1).await.unwrap();
        assert!(id.candidates[0].score < THRESHOLD);
    }
    let t_open = Instant::now();
    let id = door.identify(&unit(98), 1).await.unwrap();
    assert!(
        t_open.elapsed() < Duration::from_millis(100),
        "breaker open: no remote wait ({:?})",
        t_open.elapsed()
    );
    assert!(matches!(id.remote, RemoteState::Offline { .. }), "{id:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "offline decisions took {:?}",
        t.elapsed()
    );

    // Enrollments and removals queue in the outbox; nothing is lost.
    door.create_person(NewPerson {
        id: Some("p2".into()),
        name: "Queued".into(),
        ..NewPerson::default()
    })
    .await
    .unwrap();
    let w2 = door
        .add_templates("p2", vec![unit(2), unit(3)])
        .await
        .unwrap();
    assert!(!w2.remote_confirmed);
    let w3 = door.add_templates("p1", vec![unit(4)]).await.unwrap();
    door.delete_template(w1.templates[0]).await.unwrap();
    assert_eq!(
        cache.outbox_len(),
        4,
        "person, 2 enrollments, 1 removal queued"
    );
    // Queued work is identified locally at once.
    assert_eq!(
        door.identify(&unit(3), 1).await.unwrap().candidates[0].person,
        "p2"
    );

    // Milvus comes back (with its data); the next sync replays the outbox in order.
    let server = Instance::start(&data);
    let door = Tiered::new(Arc::clone(&cache), Arc::clone(&remote), &cfg, THRESHOLD);
    let r = door.sync().await.expect("sync after restart");
    assert_eq!(r.outbox_replayed, 4, "{r:?}");
    assert_eq!(cache.outbox_len(), 0);
    assert_eq!(door.remote_state(), RemoteState::Online);
    // Counts match on both sides: p1's second template and p2's two; p1's first is deleted.
    assert_eq!(cache.template_count(), 3);
    assert_eq!(remote.count_templates().await.unwrap(), 3);
    let mut p2 = remote.person_templates("p2").await.unwrap();
    p2.sort_by_key(|t| t.id);
    let mut expect = w2.templates.clone();
    expect.sort();
    assert_eq!(p2.iter().map(|t| t.id).collect::<Vec<_>>(), expect);
    assert!(remote.person("p2").await.unwrap().is_some());
    assert_eq!(
        remote.person_templates("p1").await.unwrap()[0].id,
        w3.templates[0]
    );
    // Replaying again changes nothing (idempotent).
    let r = door.sync().await.unwrap();
    assert_eq!(r.outbox_replayed, 0);
    assert_eq!(remote.count_templates().await.unwrap(), 3);
    drop(door);
    drop(cache);
    // Stop the server before its data directory (which holds its pid files) goes.
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
