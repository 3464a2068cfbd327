//! The HTTP API over a tiered gallery with a real Milvus 2.3.5 (FACEGATE_MILVUS_URL, started by
//! `scripts/test`): enrollment through the API reaches Milvus, deletion removes it there.

mod api_support;
mod common;

use std::sync::Arc;

use api_support::{Options, Server, fixture_bytes, json, model};
use facegate::gallery::milvus::MilvusStore;
use facegate::gallery::{Cache, Gallery, MilvusConfig, Tiered};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_through_the_api_reaches_milvus_and_deletion_removes_it() {
    let Some(url) = common::milvus_url() else {
        return;
    };
    let dir = common::tmpdir("api-milvus");
    let config = MilvusConfig {
        url,
        collection_prefix: common::unique_prefix("api"),
        search_timeout_ms: 5_000,
        write_timeout_ms: 60_000,
        ..MilvusConfig::default()
    };
    let cache = Arc::new(
        Cache::open(&dir.join("gallery"), &model(), &common::device_key(&dir)).expect("cache"),
    );
    let remote = Arc::new(MilvusStore::new(&config, &model()));
    let tiered = Arc::new(Tiered::new(cache, remote, &config, api_support::THRESHOLD));
    tiered.sync().await.expect("Milvus answers");
    let o = Options {
        gallery: Some(Arc::clone(&tiered) as Arc<dyn Gallery>),
        ..Options::default()
    };
    let s = Server::start("api-milvus-server", o).await;

    let (status, body) = json(
        s.post("/v1/persons")
            .bearer_auth(&s.admin)
            .json(&json!({"id": "obama", "name": "Barack Obama"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = json(
        s.post_image("/v1/persons/obama/faces", fixture_bytes("obama_1.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["remote_confirmed"], true,
        "written through to Milvus: {body}"
    );
    assert_eq!(tiered.remote().count_templates().await.unwrap(), 1);

    let (status, body) = json(s.get("/readyz").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["milvus"]["state"], "online", "{body}");

    // Identify answers from the cache; the decision is the same as without Milvus.
    let (_, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["decision"], "granted", "{body}");

    let (status, body) = json(
        s.http
            .delete(s.url("/v1/persons/obama"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"]["templates"], 1);
    assert_eq!(body["removed"]["remote_confirmed"], true, "{body}");
    assert_eq!(tiered.remote().count_templates().await.unwrap(), 0);
    let text = s
        .get("/metrics")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("facegate_milvus_online 1"), "{text}");
    assert!(text.contains("facegate_outbox_depth 0"), "{text}");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
