//! An API server started in-process on a free loopback port, called over real HTTP.
#![allow(dead_code)]

use facegate::access::decision::OperatingPoint;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use facegate::access::AuditLog;
use facegate::api::auth::{generate_token, hash_token};
use facegate::api::{self, Api, ApiConfig, ApiParts, DoorControl, DoorError, DoorStatus};
use facegate::gallery::{Cache, Gallery, ModelTag};
use facegate::vision::VisionParams;
use tokio::sync::oneshot;

use crate::common;

/// MobileFaceNet's threshold from its model card.
pub const THRESHOLD: f32 = 0.4122;

pub fn model() -> ModelTag {
    ModelTag::new("mobilefacenet", 192)
}

pub struct Server {
    pub base: String,
    pub api: Arc<Api>,
    pub admin: String,
    pub viewer: String,
    pub http: reqwest::Client,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Options {
    pub config: ApiConfig,
    /// Default: a fresh sled-only gallery in the server's temp directory.
    pub gallery: Option<Arc<dyn Gallery>>,
    pub door: Option<Arc<dyn DoorControl>>,
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub max_image_pixels: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: ApiConfig {
                inference_slots: 2,
                queue_depth: 16,
                rate_per_minute: 100_000,
                rate_burst: 10_000,
                ..ApiConfig::default()
            },
            gallery: None,
            door: None,
            tls: None,
            max_image_pixels: facegate::vision::frame::DEFAULT_MAX_PIXELS,
        }
    }
}

impl Server {
    pub async fn start(name: &str, mut o: Options) -> Server {
        let dir = common::tmpdir(name);
        let admin = generate_token().unwrap();
        let viewer = generate_token().unwrap();
        o.config.admin_token_sha256 = hash_token(&admin);
        o.config.viewer_token_sha256 = hash_token(&viewer);
        let gallery = o.gallery.unwrap_or_else(|| {
            Arc::new(
                Cache::open(&dir.join("gallery"), &model(), &common::device_key(&dir))
                    .expect("cache"),
            ) as Arc<dyn Gallery>
        });
        let audit = Arc::new(
            AuditLog::open(&dir.join("audit"), 10_000, &common::device_key(&dir))
                .expect("audit log"),
        );
        let api = Arc::new(
            Api::new(
                &o.config,
                ApiParts {
                    gallery,
                    audit,
                    models: Arc::new(common::models().clone()),
                    vision: VisionParams::default(),
                    threshold: THRESHOLD,
                    operating: Arc::new(OperatingPoint::fixed(THRESHOLD, 0.0)),
                    top_k: 5,
                    max_image_pixels: o.max_image_pixels,
                    door: o.door,
                },
            )
            .expect("api"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let scheme = if o.tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(api::serve(listener, o.tls, Arc::clone(&api), async move {
            let _ = stopped.await;
        }));
        Server {
            base: format!("{scheme}://{addr}"),
            api,
            admin,
            viewer,
            http: reqwest::Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    /// POST an image file as a raw body with the admin token.
    pub fn post_image(&self, path: &str, bytes: Vec<u8>) -> reqwest::RequestBuilder {
        self.post(path)
            .bearer_auth(&self.admin)
            .header("content-type", "image/jpeg")
            .body(bytes)
    }

    /// The server still answers, on a new connection: after an early 413 the shared client's
    /// connection may still be busy writing the refused body (a client-side race in hyper's
    /// pool, not the server's state).
    pub async fn assert_alive(&self) {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let r = fresh
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("server answers");
        assert_eq!(r.status(), 200, "health after the previous call");
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(name)).unwrap()
}

/// Status and JSON body of a response.
pub async fn json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    (status, v)
}

/// Create person `id` (card number 4711) through the API, as the admin; asserts 201.
pub async fn create_person(s: &Server, id: &str, name: &str) {
    let (status, body) = json(
        s.post("/v1/persons")
            .bearer_auth(&s.admin)
            .json(&serde_json::json!({"id": id, "name": name, "external_id": "4711"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], id);
}

/// A stand-in door for the routing and auth tests only (the API's and the console's): it
/// records unlocks, nothing more, and reports `contact` as the door contact's state.
#[derive(Default)]
pub struct RecordingDoor {
    pub unlocked: AtomicBool,
    pub contact: Option<bool>,
}

#[async_trait]
impl DoorControl for RecordingDoor {
    async fn status(&self) -> Result<DoorStatus, DoorError> {
        let unlocked = self.unlocked.load(Ordering::SeqCst);
        Ok(DoorStatus {
            state: if unlocked { "unlocked" } else { "locked" }.into(),
            unlocked,
            unlocked_until_ms: None,
            open: self.contact,
            frames_per_s: None,
        })
    }

    async fn unlock(&self, _seconds: Option<u32>) -> Result<DoorStatus, DoorError> {
        self.unlocked.store(true, Ordering::SeqCst);
        self.status().await
    }
}
