//! The web console over plain HTTP (no browser): sign-in, sessions and their cookie, CSRF,
//! the viewer's read-only access, and that its changes go through the API (and its audit log).
//! The browser test is tests/console_browser.rs.

mod api_support;
mod common;
mod run_support;

use run_support::Signed;

use std::sync::Arc;

use api_support::RecordingDoor;
use std::sync::atomic::Ordering;

use facegate::access::decision::OperatingPoint;
use facegate::access::{AuditLog, EventFilter};
use facegate::api::auth::{generate_token, hash_token};
use facegate::api::{self, Api, ApiConfig, ApiParts, DoorControl};
use facegate::console::ConsoleConfig;
use facegate::gallery::{Cache, Gallery, ModelTag};
use facegate::vision::VisionParams;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

struct Console {
    base: String,
    admin: String,
    viewer: String,
    api: Arc<Api>,
    door: Arc<RecordingDoor>,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(name: &str, console: ConsoleConfig) -> Console {
    let dir = common::tmpdir(name);
    let admin = generate_token().unwrap();
    let viewer = generate_token().unwrap();
    let config = ApiConfig {
        admin_token_sha256: hash_token(&admin),
        viewer_token_sha256: hash_token(&viewer),
        inference_slots: 1,
        ..ApiConfig::default()
    };
    let key = common::device_key(&dir);
    let gallery: Arc<dyn Gallery> = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &key,
        )
        .unwrap(),
    );
    let audit = Arc::new(AuditLog::open(&dir.join("audit"), 10_000, &key).unwrap());
    let door = Arc::new(RecordingDoor {
        contact: Some(false),
        ..RecordingDoor::default()
    });
    let api = Arc::new(
        Api::new(
            &config,
            ApiParts {
                gallery,
                audit,
                models: Arc::new(common::models().clone()),
                vision: VisionParams::default(),
                threshold: 0.4122,
                operating: Arc::new(OperatingPoint::fixed(0.4122, 0.0)),
                top_k: 5,
                max_image_pixels: facegate::vision::frame::DEFAULT_MAX_PIXELS,
                door: Some(Arc::clone(&door) as Arc<dyn DoorControl>),
            },
        )
        .unwrap()
        .with_console(&console, false)
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, None, Arc::clone(&api), async move {
        let _ = stopped.await;
    }));
    Console {
        base: format!("http://{addr}"),
        admin,
        viewer,
        api,
        door,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _stop: stop,
    }
}

/// A signed-in browser, as far as HTTP goes: the session cookie and the page's CSRF token.
impl Console {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    async fn sign_in(&self, token: &str) -> (reqwest::Response, Option<Signed>) {
        run_support::sign_in(&self.http, &self.base, token).await
    }

    async fn get(&self, s: Option<&Signed>, p: &str) -> reqwest::Response {
        let mut r = self.http.get(self.url(p));
        if let Some(s) = s {
            r = r.header("cookie", &s.cookie);
        }
        r.send().await.unwrap()
    }

    async fn post(&self, s: Option<&Signed>, p: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.post(self.url(p)).form(form);
        if let Some(s) = s {
            r = r.header("cookie", &s.cookie);
        }
        r.send().await.unwrap()
    }

    async fn persons(&self) -> Vec<facegate::gallery::Person> {
        self.api.gallery.persons(None, 100).await.unwrap()
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn nothing_is_reachable_without_a_session() {
    let c = start("console-nosession", ConsoleConfig::default()).await;
    for p in [
        "/console",
        "/console/persons",
        "/console/persons/new",
        "/console/events",
        "/console/events/rows",
        "/console/events/1/face",
        "/console/door",
        "/console/status",
    ] {
        let r = c.get(None, p).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{p}");
        assert_eq!(location(&r), "/console/login", "{p}");
    }
    let r = c
        .post(
            None,
            "/console/persons",
            &[("name", "Mallory"), ("csrf", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(c.persons().await.is_empty(), "nothing was created");
    // A cookie of no session is no better.
    let r = c
        .http
        .get(c.url("/console/persons"))
        .header("cookie", "facegate_session=00ff")
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/console/login");
    // The sign-in page and the assets are public; the page carries the security headers.
    let r = c.get(None, "/console/login").await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(
        c.get(None, "/console/assets/console.css").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_in_gives_a_strict_cookie_and_sign_out_ends_the_session() {
    let c = start("console-signin", ConsoleConfig::default()).await;
    let (r, s) = c.sign_in("fgt_not-a-token").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(s.is_none());

    let (r, s) = c.sign_in(&c.admin).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in [
        "facegate_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP: no Secure flag ({set})"
    );
    assert!(!set.contains(&c.admin), "the token is not in the cookie");
    let s = s.unwrap();
    assert_eq!(s.csrf.len(), 64);
    let page = c
        .get(Some(&s), "/console/persons")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("New person") && page.contains(">admin<"),
        "{page}"
    );

    // Sign out: a wrong CSRF token does not; the right one does, and clears the cookie.
    let r = c
        .post(Some(&s), "/console/logout", &[("csrf", "nope")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(Some(&s), "/console/logout", &[("csrf", &s.csrf)])
        .await;
    assert_eq!(location(&r), "/console/login");
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = c.get(Some(&s), "/console/persons").await;
    assert_eq!(
        location(&r),
        "/console/login",
        "the old cookie opens nothing"
    );
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token_and_this_origin() {
    let c = start("console-csrf", ConsoleConfig::default()).await;
    let (_, s) = c.sign_in(&c.admin).await;
    let s = s.unwrap();
    let form = |csrf: &'static str| vec![("csrf", csrf), ("name", "Ada"), ("id", "ada")];
    for bad in ["", "0000"] {
        let r = c.post(Some(&s), "/console/persons", &form(bad)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {bad:?}");
    }
    // Another session's token is no good either.
    let (_, other) = c.sign_in(&c.admin).await;
    let other = other.unwrap();
    assert_ne!(other.csrf, s.csrf);
    let r = c
        .post(
            Some(&s),
            "/console/persons",
            &[("csrf", other.csrf.as_str()), ("name", "Ada")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The right token from another site's page.
    let r = c
        .http
        .post(c.url("/console/persons"))
        .header("cookie", &s.cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", s.csrf.as_str()), ("name", "Ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(c.persons().await.is_empty(), "nothing was created");

    // The right token: created through the API, with the rules of the form.
    let r = c
        .http
        .post(c.url("/console/persons"))
        .header("cookie", &s.cookie)
        .header("origin", c.base.as_str())
        .form(&[
            ("csrf", s.csrf.as_str()),
            ("id", "ada"),
            ("name", "Ada Lovelace"),
            ("external_id", "4711"),
            ("enabled", "on"),
            ("valid_until", "2030-01-01T00:00"),
            ("schedule", "mon-fri 08:00-18:00"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(location(&r), "/console/persons/ada?done=created");
    let p = &c.persons().await[0];
    assert_eq!((p.id.as_str(), p.name.as_str()), ("ada", "Ada Lovelace"));
    assert_eq!(p.external_id.as_deref(), Some("4711"));
    assert!(p.enabled && p.valid_until.is_some());
    assert_eq!(p.schedule[0].days.len(), 5);

    // A bad schedule: the form comes back with what was typed and why; nothing changes.
    let r = c
        .post(
            Some(&s),
            "/console/persons/ada",
            &[
                ("csrf", &s.csrf),
                ("name", "Ada L."),
                ("schedule", "someday 8-9"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("schedule line 1") && page.contains("someday 8-9"),
        "{page}"
    );
    assert_eq!(c.persons().await[0].name, "Ada Lovelace");
}

#[tokio::test]
async fn the_viewer_sees_but_cannot_change() {
    let c = start("console-viewer", ConsoleConfig::default()).await;
    let (_, admin) = c.sign_in(&c.admin).await;
    let admin = admin.unwrap();
    let r = c
        .post(
            Some(&admin),
            "/console/persons",
            &[
                ("csrf", &admin.csrf),
                ("id", "bob"),
                ("name", "Bob"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let (_, v) = c.sign_in(&c.viewer).await;
    let v = v.unwrap();
    let page = c
        .get(Some(&v), "/console/persons/bob")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Bob") && page.contains("viewer (read only)"));
    for change in [
        "id=\"delete\"",
        "id=\"save\"",
        "id=\"enroll\"",
        "New person",
    ] {
        assert!(!page.contains(change), "the viewer's page shows {change}");
    }
    let door = c.get(Some(&v), "/console/door").await.text().await.unwrap();
    assert!(door.contains("locked") && !door.contains("id=\"unlock\""));
    // Every change is refused, with the viewer's own valid CSRF token.
    for (path, form) in [
        ("/console/persons", vec![("name", "Eve")]),
        ("/console/persons/bob", vec![("name", "Eve")]),
        ("/console/persons/bob/delete", vec![]),
        ("/console/door/unlock", vec![]),
    ] {
        let mut form = form;
        form.push(("csrf", v.csrf.as_str()));
        let r = c.post(Some(&v), path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in [
        "/console/persons/new",
        "/console/door/unlock",
        "/console/persons/bob/delete",
    ] {
        assert_eq!(
            c.get(Some(&v), path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert!(!c.door.unlocked.load(Ordering::SeqCst));
    let persons = c.persons().await;
    assert_eq!((persons.len(), persons[0].name.as_str()), (1, "Bob"));
    // The viewer may still sign out.
    let r = c
        .post(Some(&v), "/console/logout", &[("csrf", &v.csrf)])
        .await;
    assert_eq!(location(&r), "/console/login");
}

#[tokio::test]
async fn unlock_enroll_and_delete_go_through_the_api_and_its_audit_log() {
    let c = start("console-actions", ConsoleConfig::default()).await;
    let (_, s) = c.sign_in(&c.admin).await;
    let s = s.unwrap();
    // Unlock: a confirmation page first, then the API's unlock, audited with the reason.
    let confirm = c
        .get(Some(&s), "/console/door/unlock")
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Unlock the door?") && confirm.contains(&s.csrf));
    let r = c
        .post(
            Some(&s),
            "/console/door/unlock",
            &[("csrf", &s.csrf), ("reason", "parcel")],
        )
        .await;
    assert_eq!(location(&r), "/console/door?done=unlocked");
    assert!(c.door.unlocked.load(Ordering::SeqCst));
    let page = c
        .api
        .audit
        .query(&EventFilter::default(), None, 10)
        .unwrap();
    let e = &page.events[0];
    assert_eq!(e.reason.as_deref(), Some("web console: parcel"));
    assert_eq!(serde_json::to_value(e.action).unwrap(), "unlock");

    // Enroll: one usable photo and one without a face, each with its own result.
    let r = c
        .post(
            Some(&s),
            "/console/persons",
            &[
                ("csrf", &s.csrf),
                ("id", "obama"),
                ("name", "Barack Obama"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let part = |name: &str| {
        reqwest::multipart::Part::bytes(std::fs::read(common::fixture(name)).unwrap())
            .file_name(name.to_owned())
            .mime_str("image/jpeg")
            .unwrap()
    };
    let form = reqwest::multipart::Form::new()
        .text("csrf", s.csrf.clone())
        .part("photos", part("obama_1.jpg"))
        .part("photos", part("no_face_coffee.jpg"));
    let r = c
        .http
        .post(c.url("/console/persons/obama/enroll"))
        .header("cookie", &s.cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("1 photo enrolled, 1 refused"), "{page}");
    assert!(page.contains("obama_1.jpg") && page.contains("no_face_coffee.jpg"));
    assert!(
        page.contains("no_face"),
        "the refusal's reason code: {page}"
    );
    assert_eq!(c.api.gallery.templates_of("obama").await.unwrap().len(), 1);
    // Without the CSRF token: refused, nothing enrolled.
    let form = reqwest::multipart::Form::new().part("photos", part("obama_2.jpg"));
    let r = c
        .http
        .post(c.url("/console/persons/obama/enroll"))
        .header("cookie", &s.cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(c.api.gallery.templates_of("obama").await.unwrap().len(), 1);

    // The events page lists the enrollment.
    let events = c
        .get(Some(&s), "/console/events?person=obama&action=enroll")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        events.contains("enrolled") && events.contains("rejected"),
        "{events}"
    );

    // Delete: a confirmation page, then the API's delete (templates too), audited.
    let confirm = c
        .get(Some(&s), "/console/persons/obama/delete")
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Delete Barack Obama?") && confirm.contains("1 face template"));
    let r = c
        .post(
            Some(&s),
            "/console/persons/obama/delete",
            &[("csrf", &s.csrf)],
        )
        .await;
    assert_eq!(location(&r), "/console/persons?done=deleted");
    assert!(c.persons().await.is_empty());
    let page = c.api.audit.query(&EventFilter::default(), None, 1).unwrap();
    assert_eq!(
        serde_json::to_value(page.events[0].action).unwrap(),
        "delete_person"
    );
}

#[tokio::test]
async fn a_disabled_console_is_not_served() {
    let c = start(
        "console-off",
        ConsoleConfig {
            enabled: false,
            ..ConsoleConfig::default()
        },
    )
    .await;
    assert_eq!(
        c.get(None, "/console/login").await.status(),
        StatusCode::NOT_FOUND
    );
    // The API is unchanged.
    assert_eq!(c.get(None, "/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_door_camera_the_camera_page_says_so_and_serves_no_frame() {
    let c = start("console-nocamera", ConsoleConfig::default()).await;
    let (_, s) = c.sign_in(&c.admin).await;
    let s = s.unwrap();
    let r = c
        .http
        .post(c.url("/console/persons"))
        .header("cookie", &s.cookie)
        .header("origin", c.base.as_str())
        .form(&[("csrf", s.csrf.as_str()), ("id", "ada"), ("name", "Ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // This door (a stand-in for the routing tests) has no camera view.
    let page = c
        .get(Some(&s), "/console/persons/ada/camera")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"no-camera\""), "{page}");
    for p in ["/console/camera/frame.jpg", "/console/camera/state"] {
        assert_eq!(
            c.get(Some(&s), p).await.status(),
            StatusCode::NOT_FOUND,
            "{p}"
        );
    }
    let r = c
        .post(
            Some(&s),
            "/console/persons/ada/capture",
            &[("csrf", &s.csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(c.persons().await[0].id == "ada");
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let c = start("console-signin-limit", ConsoleConfig::default()).await;
    let burst = facegate::console::SIGN_IN_BURST as usize;
    for i in 0..burst {
        let (r, s) = c.sign_in("fgt_guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(s.is_none());
    }
    // Over the limit: refused before the token is looked at, even the right one.
    let (r, s) = c.sign_in(&c.admin).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(s.is_none());
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many sign-in attempts")
    );
}
