//! What `facegate serve` acknowledged survives `kill -9`, its audit event included: enroll
//! (201) and delete (200) through the real binary's API, kill it with SIGKILL right after an
//! acknowledgement, and reopen the audit log and the gallery.

mod common;
mod serve_support;

use facegate::access::{Action, AuditLog, EventFilter, Outcome};
use facegate::gallery::{Cache, ModelTag};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_event_of_an_acknowledged_write_survives_kill_9() {
    let photo = std::fs::read(common::fixture("obama_1.jpg")).unwrap();
    // Rounds: the kill comes right after the last acknowledgement, before sled's own
    // background flush (every 500 ms) could save it.
    for round in 0..3 {
        let dir = common::tmpdir(&format!("serve-durability-{round}"));
        let mut served = serve_support::serve(&dir, &dir.join("gallery"), "", |_| {});
        served.wait_healthy().await;
        let (base, token) = (served.base.clone(), served.token.clone());
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{base}/v1/persons"))
            .bearer_auth(&token)
            .json(&json!({"id": "obama", "name": "Barack Obama"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let mut last_template = 0u64;
        for k in 0..(round + 2) {
            // The same photo again would be "already enrolled" (nothing written): each
            // enrollment is of another person, the duplicate allowed.
            let person = if k == 0 {
                "obama".to_owned()
            } else {
                format!("obama{k}")
            };
            if k > 0 {
                let r = http
                    .post(format!("{base}/v1/persons"))
                    .bearer_auth(&token)
                    .json(&json!({"id": person, "name": "Barack Obama"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
            let r = http
                .post(format!(
                    "{base}/v1/persons/{person}/faces?allow_duplicate=true"
                ))
                .bearer_auth(&token)
                .header("content-type", "image/jpeg")
                .body(photo.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.unwrap();
            last_template = body["templates"][0].as_u64().unwrap();
        }
        // And a deletion of another person, acknowledged last.
        let r = http
            .post(format!("{base}/v1/persons"))
            .bearer_auth(&token)
            .json(&json!({"id": "gone", "name": "Gone"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .delete(format!("{base}/v1/persons/gone"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        served.child.kill().unwrap(); // SIGKILL
        served.child.wait().unwrap();

        let log = AuditLog::open(&dir.join("audit"), 1_000_000, &common::device_key(&dir))
            .expect("audit log");
        let events = log
            .query(&EventFilter::default(), None, 1000)
            .unwrap()
            .events;
        assert!(
            events.iter().any(|e| e.action == Action::Enroll
                && e.outcome == Outcome::Enrolled
                && e.template == Some(last_template)),
            "round {round}: the last acknowledged enrollment ({last_template}) has no audit \
             event: {events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.action == Action::DeletePerson && e.person.as_deref() == Some("gone")),
            "round {round}: the acknowledged deletion has no audit event: {events:?}"
        );
        drop(log);
        let cache = Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .expect("gallery");
        let last_person = format!("obama{}", round + 1);
        assert!(
            cache.template_ids(&last_person).contains(&last_template),
            "the acknowledged template itself is in the gallery"
        );
        drop(cache);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
