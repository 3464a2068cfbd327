//! The gallery against a real Milvus 2.3.5 server (started by `scripts/test` through
//! `scripts/milvus`; the URL comes in FACEGATE_MILVUS_URL). Each test uses its own collection
//! prefix, so tests do not see each other's data.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use facegate::gallery::milvus::MilvusStore;
use facegate::gallery::{
    Cache, Gallery, MilvusConfig, ModelTag, NewPerson, PersonPatch, Source, Tiered,
};
use milvus::v2::prelude::*;

/// MobileFaceNet's threshold from its model card.
const THRESHOLD: f32 = 0.4122;

fn model() -> ModelTag {
    ModelTag::new("mobilefacenet", 192)
}

fn config(url: &str, prefix: &str) -> MilvusConfig {
    MilvusConfig {
        url: url.to_owned(),
        collection_prefix: prefix.to_owned(),
        // A loaded 2-core machine running the test suite: generous timeouts.
        search_timeout_ms: 5_000,
        write_timeout_ms: 60_000,
        ..MilvusConfig::default()
    }
}

struct Door {
    gallery: Arc<Tiered>,
    dir: PathBuf,
}

impl Drop for Door {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn door(url: &str, prefix: &str, name: &str) -> Door {
    let dir = common::tmpdir(name);
    let cache = Arc::new(
        Cache::open(&dir.join("gallery"), &model(), &common::device_key(&dir)).expect("cache"),
    );
    let cfg = config(url, prefix);
    let remote = Arc::new(MilvusStore::new(&cfg, &model()));
    Door {
        gallery: Arc::new(Tiered::new(cache, remote, &cfg, THRESHOLD)),
        dir,
    }
}

/// Embeddings of the bundled fixture photos, computed once.
fn face(name: &str) -> Vec<f32> {
    static FACES: OnceLock<HashMap<String, Vec<f32>>> = OnceLock::new();
    let faces = FACES.get_or_init(|| {
        let mut p = common::pipeline();
        ["obama_1", "obama_2", "biden_1", "biden_2"]
            .iter()
            .map(|n| {
                let e = common::embed_largest(&mut p, &common::fixture(&format!("{n}.jpg")));
                (n.to_string(), e.0)
            })
            .collect()
    });
    faces[name].clone()
}

fn person(id: &str, name: &str) -> NewPerson {
    NewPerson {
        id: Some(id.into()),
        name: name.into(),
        external_id: Some("4711".into()),
        ..NewPerson::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_doors_enroll_identify_promote_revoke_delete() {
    let Some(url) = common::milvus_url() else {
        return;
    };
    let prefix = common::unique_prefix("doors");
    let a = door(&url, &prefix, "door-a");
    let b = door(&url, &prefix, "door-b");
    let (ga, gb) = (&a.gallery, &b.gallery);
    ga.sync().await.expect("door A connects and syncs");
    gb.sync().await.expect("door B connects and syncs");

    // Enroll at A: written through to Milvus.
    ga.create_person(person("obama", "Barack Obama"))
        .await
        .unwrap();
    let w = ga
        .add_templates("obama", vec![face("obama_1")])
        .await
        .unwrap();
    assert!(w.remote_confirmed, "enrollment reached Milvus");
    assert_eq!(ga.cache().outbox_len(), 0);

    // A identifies from its cache.
    let id = ga.identify(&face("obama_2"), 3).await.unwrap();
    assert_eq!(id.source, Source::Cache);
    assert_eq!(id.candidates[0].person, "obama");
    assert!(id.candidates[0].score >= THRESHOLD, "{:?}", id.candidates);

    // B has never seen Obama: a cache miss, answered by Milvus, and promoted.
    assert!(gb.cache().get_person("obama").unwrap().is_none());
    let id = gb.identify(&face("obama_2"), 3).await.unwrap();
    assert_eq!(id.source, Source::Remote, "{id:?}");
    assert_eq!(id.candidates[0].person, "obama");
    assert_eq!(id.candidates[0].template, w.templates[0]);
    let promoted = gb.cache().get_person("obama").unwrap().expect("promoted");
    // Milvus holds ids, not names: B knows Obama by his id until it is told his name.
    assert_eq!(promoted.name, "obama");
    assert_eq!(gb.cache().template_ids("obama"), w.templates);
    let again = gb.identify(&face("obama_2"), 3).await.unwrap();
    assert_eq!(
        again.source,
        Source::Cache,
        "the next visit is decided offline"
    );

    // One threshold, one meaning: the same probe scores the same locally and in Milvus.
    let local = ga.cache().search(&face("obama_2"), 1)[0].score;
    let remote = ga.remote().search(&face("obama_2"), 1).await.unwrap()[0].score;
    assert!(
        (local - remote).abs() < 1e-4,
        "cache {local} vs Milvus {remote}"
    );

    // A second person reaches B by sync.
    ga.create_person(person("biden", "Joe Biden"))
        .await
        .unwrap();
    let wb = ga
        .add_templates("biden", vec![face("biden_1")])
        .await
        .unwrap();
    let r = gb.sync().await.unwrap();
    assert!(r.persons_updated >= 1 && r.templates_added >= 1, "{r:?}");
    assert_eq!(gb.cache().template_ids("biden"), wb.templates);

    // Revocation at A reaches B by sync.
    ga.update_person(
        "biden",
        PersonPatch {
            enabled: Some(false),
            ..PersonPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(gb.cache().get_person("biden").unwrap().unwrap().enabled);
    gb.sync().await.unwrap();
    assert!(
        !gb.cache().get_person("biden").unwrap().unwrap().enabled,
        "revocation synced"
    );

    // Deletion at A: gone from A's cache, from Milvus' search, and from B after sync.
    let removed = ga.delete_person("obama").await.unwrap();
    assert_eq!((removed.persons, removed.templates), (1, 1));
    assert!(removed.remote_confirmed);
    assert!(ga.remote().person("obama").await.unwrap().is_none());
    assert!(
        ga.remote()
            .person_templates("obama")
            .await
            .unwrap()
            .is_empty()
    );
    let hits = ga.remote().search(&face("obama_2"), 10).await.unwrap();
    assert!(
        hits.iter().all(|h| h.person != "obama"),
        "deleted template still searchable: {hits:?}"
    );
    let r = gb.sync().await.unwrap();
    assert_eq!((r.persons_removed, r.templates_removed), (1, 1), "{r:?}");
    assert!(gb.cache().get_person("obama").unwrap().is_none());
    let id = gb.identify(&face("obama_2"), 3).await.unwrap();
    assert!(id.candidates.iter().all(|c| c.person != "obama"), "{id:?}");

    // The tombstone keeps no face data.
    let changes = ga
        .remote()
        .changes(0, facegate::gallery::now_ms() + 1, 100)
        .await
        .unwrap()
        .unwrap();
    let tomb = changes
        .templates
        .iter()
        .find(|t| t.id == w.templates[0])
        .expect("tombstone row");
    assert!(tomb.deleted && tomb.embedding.is_none());
    assert_eq!(ga.remote().count_templates().await.unwrap(), 1);
}

// ---- The SDK's and server's known traps, pinned so an upgrade that changes them is noticed.

async fn raw_client(url: &str) -> ClientV2 {
    ClientV2::new(&ConnectConfig::new().uri(url.to_owned()))
        .await
        .expect("connect")
}

/// A 4-d HNSW collection with default (Bounded) consistency and 3000 rows.
async fn raw_collection(c: &ClientV2, name: &str) {
    let schema = CollectionSchema::new()
        .add_field(
            FieldSchema::new()
                .name("pk")
                .data_type(DataType::Int64)
                .primary_key(true),
        )
        .add_field(
            FieldSchema::new()
                .name("v")
                .data_type(DataType::FloatVector)
                .dimension(4),
        );
    c.create_collection(
        CreateCollectionRequest::builder()
            .collection_name(name)
            .schema(schema)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    c.create_index(
        CreateIndexRequest::builder()
            .collection_name(name)
            .index_param(
                IndexParam::new()
                    .field_name("v")
                    .index_type(IndexType::Hnsw)
                    .metric_type(MetricType::Cosine)
                    .extra_params(HashMap::from([
                        ("M".into(), "8".into()),
                        ("efConstruction".into(), "64".into()),
                    ])),
            )
            .sync(true)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    c.load_collection(
        LoadCollectionRequest::builder()
            .collection_name(name)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // More rows than Milvus' minimum for building an index on a sealed segment (1024).
    let rows: Vec<i64> = (1..=3000).collect();
    let vs: Vec<Vec<f32>> = rows
        .iter()
        .map(|&i| vec![1.0, (i % 97) as f32 / 50.0, (i % 89) as f32 / 40.0, -0.25])
        .collect();
    c.insert(
        InsertRequest::builder()
            .collection_name(name)
            .columns(vec![
                FieldData::int64("pk", rows),
                FieldData::float_vector("v", vs),
            ])
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
}

fn search(name: &str, level: ConsistencyLevel, ef: &str, limit: i64) -> SearchRequest {
    SearchRequest::builder()
        .collection_name(name)
        .vector_field("v")
        .vectors(SearchVectors::Float(vec![vec![1.0, 0.5, 0.5, -0.25]]))
        .limit(limit)
        .extra_params(HashMap::from([("ef".into(), ef.into())]))
        .consistency_level(level)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_of_sdk_3_0_3_with_milvus_2_3_5() {
    let Some(url) = common::milvus_url() else {
        return;
    };
    let c = raw_client(&url).await;
    let name = common::unique_prefix("traps");
    raw_collection(&c, &name).await;

    // 1. Bounded consistency (the default) hides a write from an immediate search; Session,
    //    on the same client, sees it.
    let bounded = c
        .search(search(&name, ConsistencyLevel::Bounded, "64", 5))
        .await
        .unwrap();
    let n_bounded: usize = bounded.results().iter().map(|r| r.get_scores().len()).sum();
    let session = c
        .search(search(&name, ConsistencyLevel::Session, "64", 5))
        .await
        .unwrap();
    let n_session: usize = session.results().iter().map(|r| r.get_scores().len()).sum();
    assert_eq!(n_bounded, 0, "Bounded now sees an immediate write");
    assert_eq!(n_session, 5);

    // 2. On 2.3.5 search hits cannot be read with rows(); get_ids()/get_scores() work.
    let first = &session.results().iter().next().unwrap();
    assert!(first.rows().is_err(), "rows() now works on search hits");
    assert!(matches!(first.get_ids(), Ids::Int64(v) if v.len() == 5));

    // 3. get(ids) and delete().ids(..) send a template the server rejects; a literal
    //    `pk in [..]` filter works.
    let get = c
        .get(
            GetRequest::builder()
                .collection_name(name.as_str())
                .ids(Ids::Int64(vec![1, 2]))
                .build()
                .unwrap(),
        )
        .await;
    assert!(get.is_err(), "get(ids) now works");
    let del = c
        .delete(
            DeleteRequest::builder()
                .collection_name(name.as_str())
                .ids(Ids::Int64(vec![1]))
                .build()
                .unwrap(),
        )
        .await;
    assert!(del.is_err(), "delete().ids() now works");
    let q = c
        .query(
            QueryRequest::builder()
                .collection_name(name.as_str())
                .filter("pk in [1,2,3]")
                .output_fields(["pk"])
                .consistency_level(ConsistencyLevel::Strong)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let mut pks = q
        .results()
        .get_output_field("pk")
        .and_then(|f| f.as_int64())
        .unwrap()
        .to_vec();
    pks.sort();
    assert_eq!(pks, vec![1, 2, 3]);

    // 4. The search-time `ef` reaches the server: one smaller than the limit is refused (so
    //    facegate always sends max(hnsw_ef, k)).
    // 4. Seal, index and (re)load the rows.
    c.flush(
        FlushRequest::builder()
            .collection_names([name.as_str()])
            .wait_flushed_ms(60_000)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    for _ in 0..60 {
        let d = c
            .describe_index(
                DescribeIndexRequest::builder()
                    .collection_name(name.as_str())
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let n: i64 = d.indexes().iter().map(|i| i.get_indexed_rows()).sum();
        if n >= 3000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    c.release_collection(
        ReleaseCollectionRequest::builder()
            .collection_name(name.as_str())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    c.load_collection(
        LoadCollectionRequest::builder()
            .collection_name(name.as_str())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // Only once the rows sit in sealed, indexed and loaded segments does the search-time `ef`
    // reach HNSW (growing segments are searched exhaustively and ignore it): then an ef
    // below the limit is refused by the server, so facegate sends max(hnsw_ef, k).
    let small = c
        .search(search(&name, ConsistencyLevel::Session, "2", 5))
        .await
        .expect_err("an ef below topk is now accepted");
    assert!(
        small
            .to_string()
            .contains("ef(2) should be larger than k(5)"),
        "{small}"
    );
    let ok = c
        .search(search(&name, ConsistencyLevel::Session, "64", 5))
        .await
        .unwrap();
    assert_eq!(
        ok.results()
            .iter()
            .map(|r| r.get_scores().len())
            .sum::<usize>(),
        5
    );

    let _ = c
        .drop_collection(
            DropCollectionRequest::builder()
                .collection_name(name.as_str())
                .build()
                .unwrap(),
        )
        .await;
}
