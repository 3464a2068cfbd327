//! Gallery benchmarks: `cargo bench --bench gallery`.
//!
//! - 1:N search in the in-memory matrix at 10k and 100k templates (192-d, the shipped model)
//!   and 100k at 512-d, one thread; and through the `Gallery` trait on a sled cache.
//! - Enrollment writes: 10k templates in one acknowledged batch, and single acknowledged
//!   writes (each one transaction + fsync), sealed under the person's key; a new person
//!   (its key slot written and synced, then its record).
//! - Start-up: opening a sealed gallery of 10k and 100k templates (unwrapping the persons'
//!   keys, decrypting every template into the matrix).
//! - With FACEGATE_MILVUS_URL set (a real Milvus, `scripts/milvus start`): the same 1:N
//!   search answered by Milvus through the same `Gallery` trait (a door whose cache misses), at
//!   10k and 100k. The collections are kept between runs (HNSW build of 100k takes minutes);
//!   FACEGATE_BENCH_MILVUS_SIZES=10000 limits the sizes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use facegate::crypto::DeviceKey;
use facegate::gallery::matrix::{Matrix, Scratch};
use facegate::gallery::milvus::MilvusStore;
use facegate::gallery::remote::RemoteStore;
use facegate::gallery::{
    Cache, Gallery, MilvusConfig, ModelTag, NewPerson, Person, Template, Tiered, now_ms,
};

/// One device key for the run.
fn key() -> DeviceKey {
    static KEY: std::sync::OnceLock<DeviceKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| DeviceKey::generate().expect("key"))
        .clone()
}

/// Persons `p0 .. p{n-1}`, stored in one batch.
fn persons(cache: &Cache, n: usize) {
    let ps: Vec<Person> = (0..n)
        .map(|p| {
            Person::from_new(
                format!("p{p}"),
                NewPerson {
                    name: format!("Person {p}"),
                    ..NewPerson::default()
                },
                1,
            )
            .expect("person")
        })
        .collect();
    for chunk in ps.chunks(5000) {
        cache.put_persons(chunk).expect("persons");
    }
}

fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// A probe near template `i`: what a returning visitor looks like.
fn near(v: &[f32], noise: &[f32]) -> Vec<f32> {
    let p: Vec<f32> = v.iter().zip(noise).map(|(a, b)| a + 0.7 * b).collect();
    let n = p.iter().map(|x| x * x).sum::<f32>().sqrt();
    p.into_iter().map(|x| x / n).collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("facegate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn matrix_search(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_search");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    for (n, dim) in [(10_000usize, 192usize), (100_000, 192), (100_000, 512)] {
        let vs = unit_vectors(n, dim, 42);
        let mut m = Matrix::new(dim);
        for (i, v) in vs.iter().enumerate() {
            m.upsert(i as u64 + 1, (i / 2) as u32, v);
        }
        let noise = unit_vectors(16, dim, 7);
        let probes: Vec<Vec<f32>> = (0..16).map(|i| near(&vs[i * 997 % n], &noise[i])).collect();
        let mut scratch = Scratch::default();
        let mut k = 0;
        g.bench_with_input(
            BenchmarkId::new(format!("matrix_{dim}d_top5"), n),
            &n,
            |b, _| {
                b.iter(|| {
                    k = (k + 1) % probes.len();
                    black_box(m.search(&probes[k], 5, &mut scratch))
                })
            },
        );
        if n == 100_000 && dim == 192 {
            g.bench_function("matrix_192d_exhaustive_f32/100000", |b| {
                b.iter(|| {
                    k = (k + 1) % probes.len();
                    black_box(m.search_exhaustive(&probes[k], 5))
                })
            });
            eprintln!(
                "memory per template at {dim}-d: {} bytes in the matrix",
                m.bytes_per_template()
            );
        }
    }
    g.finish();
}

fn filled_cache(n: usize, dim: usize, name: &str) -> (Cache, Vec<Vec<f32>>, std::path::PathBuf) {
    let dir = tmp(name);
    let cache = Cache::open(&dir, &ModelTag::new("bench", dim), &key()).expect("cache");
    let vs = unit_vectors(n, dim, 42);
    persons(&cache, n.div_ceil(2));
    for chunk in vs.chunks(10_000).enumerate() {
        let ts: Vec<Template> = chunk
            .1
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = chunk.0 * 10_000 + j;
                Template {
                    id: i as u64 + 1,
                    person: format!("p{}", i / 2),
                    embedding: v.clone(),
                    updated_ms: now_ms(),
                }
            })
            .collect();
        cache.put_templates(&ts, None).expect("templates");
    }
    (cache, vs, dir)
}

fn gallery_trait(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("gallery_identify");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    for n in [10_000usize, 100_000] {
        let (cache, vs, dir) = filled_cache(n, 192, &format!("trait{n}"));
        let noise = unit_vectors(16, 192, 7);
        let probes: Vec<Vec<f32>> = (0..16).map(|i| near(&vs[i * 997 % n], &noise[i])).collect();
        let gal: &dyn Gallery = &cache;
        let mut k = 0;
        g.bench_with_input(BenchmarkId::new("cache", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) % probes.len();
                black_box(rt.block_on(gal.identify(&probes[k], 5)).expect("identify"))
            })
        });
        drop(cache);
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

fn enrollment_writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_insert");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let vs = unit_vectors(10_000, 192, 3);
    let mut round = 0u64;
    g.bench_function("10k_templates_one_batch", |b| {
        b.iter_with_setup(
            || {
                round += 1;
                let dir = tmp(&format!("insert{round}"));
                let cache = Cache::open(&dir, &ModelTag::new("bench", 192), &key()).expect("cache");
                persons(&cache, 5000);
                let ts: Vec<Template> = vs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Template {
                        id: i as u64 + 1,
                        person: format!("p{}", i / 2),
                        embedding: v.clone(),
                        updated_ms: 0,
                    })
                    .collect();
                (cache, ts, dir)
            },
            |(cache, ts, dir)| {
                cache.put_templates(&ts, None).expect("insert");
                drop(cache);
                let _ = std::fs::remove_dir_all(dir);
            },
        )
    });
    let dir = tmp("single");
    let cache = Cache::open(&dir, &ModelTag::new("bench", 192), &key()).expect("cache");
    cache
        .create_person_local(
            NewPerson {
                id: Some("p".into()),
                name: "P".into(),
                ..NewPerson::default()
            },
            false,
        )
        .expect("person");
    let mut i = 0;
    g.bench_function("one_acknowledged_template_with_outbox", |b| {
        b.iter(|| {
            i = (i + 1) % vs.len();
            cache
                .add_templates_local("p", vec![vs[i].clone()], true)
                .expect("write")
        })
    });
    let mut n = 0;
    g.bench_function("one_acknowledged_person_with_outbox", |b| {
        b.iter(|| {
            n += 1;
            cache
                .create_person_local(
                    NewPerson {
                        id: Some(format!("new{n}")),
                        name: "New".into(),
                        ..NewPerson::default()
                    },
                    true,
                )
                .expect("write")
        })
    });
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

fn start_up(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_open");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for n in [10_000usize, 100_000] {
        let (cache, _, dir) = filled_cache(n, 192, &format!("open{n}"));
        drop(cache);
        // sled's flusher may hold the lock a moment after the drop.
        std::thread::sleep(Duration::from_millis(200));
        g.bench_with_input(BenchmarkId::new("sealed_192d", n), &n, |b, _| {
            // Only the open is timed (not the drop, nor the wait for sled's lock).
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = std::time::Instant::now();
                    let c = Cache::open(&dir, &ModelTag::new("bench", 192), &key()).expect("open");
                    total += t.elapsed();
                    assert_eq!(c.template_count(), n);
                    drop(c);
                    std::thread::sleep(Duration::from_millis(100));
                }
                total
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

fn milvus_search(c: &mut Criterion) {
    let Ok(url) = std::env::var("FACEGATE_MILVUS_URL") else {
        eprintln!("milvus benchmarks skipped: FACEGATE_MILVUS_URL not set");
        return;
    };
    let sizes: Vec<usize> = std::env::var("FACEGATE_BENCH_MILVUS_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("gallery_identify");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    for n in sizes {
        let cfg = MilvusConfig {
            url: url.clone(),
            collection_prefix: format!("bench{n}"),
            search_timeout_ms: 10_000,
            write_timeout_ms: 600_000,
            ..MilvusConfig::default()
        };
        let model = ModelTag::new("bench", 192);
        let remote = Arc::new(MilvusStore::new(&cfg, &model));
        let vs = unit_vectors(n, 192, 42);
        rt.block_on(async {
            remote.connect().await.expect("milvus");
            let have = remote.count_templates().await.expect("count");
            if have != n as u64 {
                eprintln!("loading {n} templates into Milvus (kept for later runs)...");
                for (ci, chunk) in vs.chunks(2000).enumerate() {
                    let ts: Vec<Template> = chunk
                        .iter()
                        .enumerate()
                        .map(|(j, v)| {
                            let i = ci * 2000 + j;
                            Template {
                                id: i as u64 + 1,
                                person: format!("p{}", i / 2),
                                embedding: v.clone(),
                                updated_ms: 0,
                            }
                        })
                        .collect();
                    remote.upsert_templates(&ts).await.expect("upsert");
                }
                remote.flush_and_wait_indexed(n).await.expect("index");
            }
        });
        // A door with an empty cache: every identify is a cache miss answered by Milvus.
        let dir = tmp(&format!("milvus{n}"));
        let cache = Arc::new(Cache::open(&dir, &model, &key()).expect("cache"));
        let door = Tiered::new(cache, remote, &cfg, 0.99);
        rt.block_on(async { door.remote().connect().await })
            .expect("connect");
        let noise = unit_vectors(16, 192, 7);
        let probes: Vec<Vec<f32>> = (0..16).map(|i| near(&vs[i * 997 % n], &noise[i])).collect();
        let mut k = 0;
        g.bench_with_input(BenchmarkId::new("milvus_hnsw_ef64", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) % probes.len();
                let r = rt.block_on(door.identify(&probes[k], 5)).expect("identify");
                black_box(r)
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group!(
    benches,
    matrix_search,
    gallery_trait,
    enrollment_writes,
    start_up,
    milvus_search
);
criterion_main!(benches);
