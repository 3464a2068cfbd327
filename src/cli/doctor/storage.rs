//! The gallery, central gallery (Milvus), audit log, disk and clock checks of `facegate doctor`.

use super::*;

pub(super) const ENROLL: &str = "enroll people with `facegate enroll FOLDER` or `facegate gallery add NAME \
PHOTO`";

/// The gallery check; also returns the local template count for the Milvus line.
pub(super) fn check_gallery(
    config: &Config,
    path: &Path,
    recorded: Result<Option<ModelTag>, GalleryError>,
    model: Option<&ModelTag>,
) -> (Check, Option<usize>) {
    const NAME: &str = "gallery";
    let recorded = match recorded {
        Ok(r) => r,
        Err(GalleryError::InUse { holders, .. }) => {
            return (
                Check::warning(
                    NAME,
                    format!(
                        "the gallery {} is in use by another program, most likely a running \
                         facegate: {holders}; not checked",
                        path.display()
                    ),
                    "this is normal while the door runs; to check the gallery, stop it \
                     (systemctl stop facegate) and run facegate doctor again",
                ),
                None,
            );
        }
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "restore the gallery from a backup, or move it away and enroll again \
                     (facegate gallery sync refills it from Milvus when one is configured)",
                ),
                None,
            );
        }
    };
    let Some(model) = model else {
        return (
            Check::skipped(NAME, "not checked: the embedder is unknown (see models)"),
            None,
        );
    };
    if !path.join("db").exists() {
        let writable = host::nearest_existing(path)
            .ok_or_else(|| format!("no folder of {} exists", path.display()))
            .and_then(|d| host::check_writable_dir(&d));
        return match writable {
            Err(e) => (
                Check::problem(
                    NAME,
                    format!(
                        "no gallery at {} and it cannot be created: {e}",
                        path.display()
                    ),
                    "fix gallery.path, or the folder's owner (the packaged service runs as \
                     user facegate and keeps its data in /var/lib/facegate)",
                ),
                None,
            ),
            Ok(()) => (
                Check::warning(
                    NAME,
                    format!(
                        "no gallery yet at {}: it is created when facegate first starts, and \
                         nobody is enrolled",
                        path.display()
                    ),
                    ENROLL,
                ),
                Some(0),
            ),
        };
    }
    if let Some(r) = &recorded
        && r != model
    {
        let e = GalleryError::ModelMismatch {
            path: path.display().to_string(),
            found: r.name.clone(),
            found_dim: r.dim,
            expected: model.name.clone(),
            expected_dim: model.dim,
        };
        return (
            Check::problem(
                NAME,
                e.to_string(),
                format!("e.g. set vision.embedder = {:?}", r.name),
            ),
            None,
        );
    }
    let key = match facegate::gallery::load_device_key(&config.gallery) {
        Ok(k) => k,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "run `facegate init` (or `facegate key create`), or set gallery.key_file",
                ),
                None,
            );
        }
    };
    match facegate::gallery::migrate::is_plaintext(path) {
        Ok(true) => {
            return (
                Check::warning(
                    NAME,
                    format!(
                        "{}: plaintext records (made before sealing); the next facegate run or \
                         serve converts them",
                        path.display()
                    ),
                    "start the door once (systemctl restart facegate)",
                ),
                None,
            );
        }
        Ok(false) => {}
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "see the message; then run doctor again",
                ),
                None,
            );
        }
    }
    // Not Cache::open: doctor converts nothing.
    let cache = match Cache::open_sealed(path, model, &key) {
        Ok(c) => c,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "see the message; then run doctor again",
                ),
                None,
            );
        }
    };
    let persons = cache.person_count();
    let templates = cache.template_count();
    let outbox = cache.outbox_len();
    let message = format!(
        "{}: {persons} person{}, {templates} face template{} ({}, {}-d), {}",
        path.display(),
        if persons == 1 { "" } else { "s" },
        if templates == 1 { "" } else { "s" },
        model.name,
        model.dim,
        if outbox == 0 {
            "no change waiting for the central gallery".to_string()
        } else {
            format!("{outbox} change(s) waiting for the central gallery")
        }
    );
    let check = if persons == 0 {
        Check::warning(
            NAME,
            format!("{message}; nobody is enrolled, so the door admits nobody by face"),
            ENROLL,
        )
    } else if outbox > 0 && config.milvus.enabled() {
        Check::warning(
            NAME,
            message,
            "run `facegate gallery sync` once Milvus is reachable (the door does it every \
             milvus.sync_interval_s)",
        )
    } else {
        Check::ok(NAME, message)
    };
    (check, Some(templates))
}

/// Longest wait for the central gallery.
pub(super) const MILVUS_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn check_milvus(
    config: &Config,
    model: Option<&ModelTag>,
    local_templates: Option<usize>,
) -> Result<Check> {
    const NAME: &str = "milvus";
    let m = &config.milvus;
    if !m.enabled() {
        return Ok(Check::skipped(
            NAME,
            "no central gallery configured ([milvus] url is empty): this door works from its \
             own gallery only",
        ));
    }
    let Some(model) = model else {
        return Ok(Check::skipped(
            NAME,
            "not checked: the embedder is unknown (see models)",
        ));
    };
    let store = facegate::gallery::milvus::MilvusStore::new(m, model);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let start = Instant::now();
    // Each call has the budget; the whole gets one second more, for the calls after connecting.
    let found = rt.block_on(async {
        tokio::time::timeout(
            MILVUS_TIMEOUT + Duration::from_secs(1),
            store.inspect(MILVUS_TIMEOUT),
        )
        .await
    });
    let offline = "the door keeps deciding from its own gallery and queues enrollments and \
                   removals until Milvus is back";
    let report = match found {
        Err(_) => {
            return Ok(Check::warning(
                NAME,
                format!(
                    "Milvus at {} did not answer (gave up after {} ms): {offline}",
                    m.url,
                    start.elapsed().as_millis()
                ),
                "check the network and that Milvus runs, and milvus.url",
            ));
        }
        Ok(Err(e)) => {
            return Ok(Check::warning(
                NAME,
                format!(
                    "cannot reach Milvus at {} (gave up after {} ms): {e}; {offline}",
                    m.url,
                    start.elapsed().as_millis()
                ),
                "check the network and that Milvus runs, and milvus.url and milvus.token",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let took = start.elapsed().as_millis();
    if !report.templates_exists {
        return Ok(Check::warning(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms) but has no collection {} yet",
                m.url, report.templates_collection
            ),
            "it is created when the door or `facegate gallery sync` first connects: run \
             `facegate gallery sync`",
        ));
    }
    let local = local_templates
        .map(|n| format!("; this door's gallery holds {n}"))
        .unwrap_or_default();
    Ok(match report.templates {
        Some(Ok(n)) => Check::ok(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms): collection {} holds {n} face template{}{local}",
                m.url,
                report.templates_collection,
                if n == 1 { "" } else { "s" }
            ),
        ),
        Some(Err(e)) => Check::warning(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms) but the templates in {} cannot be counted: {e}",
                m.url, report.templates_collection
            ),
            "look at Milvus' log; the door loads the collection when it connects",
        ),
        None => Check::ok(
            NAME,
            format!("Milvus at {} answers ({took} ms){local}", m.url),
        ),
    })
}

pub(super) fn check_audit(config: &Config, gallery: &Path) -> Check {
    const NAME: &str = "audit";
    let path = config.api.audit_path(gallery);
    let fix = "fix api.audit_path, or the folder's owner (the packaged service runs as user \
               facegate)";
    if path.exists() {
        if !path.is_dir() {
            return Check::problem(
                NAME,
                format!("the audit log {} is not a folder", path.display()),
                fix,
            );
        }
        return match host::check_writable_dir(&path) {
            Ok(()) => Check::ok(NAME, format!("{} is writable", path.display())),
            Err(e) => Check::problem(NAME, format!("the audit log {e}"), fix),
        };
    }
    let parent: PathBuf = match host::nearest_existing(&path) {
        Some(p) => p,
        None => {
            return Check::problem(NAME, format!("no folder of {} exists", path.display()), fix);
        }
    };
    match host::check_writable_dir(&parent) {
        Ok(()) => Check::ok(
            NAME,
            format!(
                "{} does not exist yet; it is created at the first event ({} is writable)",
                path.display(),
                parent.display()
            ),
        ),
        Err(e) => Check::problem(
            NAME,
            format!("the audit log {} cannot be created: {e}", path.display()),
            fix,
        ),
    }
}

pub(super) fn check_disk(gallery: &Path) -> Check {
    const NAME: &str = "disk";
    let Some(dir) = host::nearest_existing(gallery) else {
        return Check::skipped(NAME, format!("no folder of {} exists", gallery.display()));
    };
    match host::disk_space(&dir) {
        Err(e) => Check::warning(NAME, format!("free space unknown: {e}"), ""),
        Ok((free, total)) => {
            let message = format!(
                "{} free of {} on the disk holding {}",
                human_bytes(free),
                human_bytes(total),
                dir.display()
            );
            match host::judge_free_space(free) {
                Ok(()) => Check::ok(NAME, message),
                Err(full) => {
                    let status = if full {
                        Status::Problem
                    } else {
                        Status::Warning
                    };
                    Check::new(
                        NAME,
                        status,
                        format!(
                            "{message}: under {}",
                            human_bytes(if full {
                                host::FULL_DISK_BYTES
                            } else {
                                host::LOW_DISK_BYTES
                            })
                        ),
                    )
                    .with_fix(
                        "free some space (old logs: journalctl --vacuum-size=100M), or lower \
                         api.audit_max_events",
                    )
                }
            }
        }
    }
}

pub(super) fn check_clock(now_ms: i64) -> Check {
    const NAME: &str = "clock";
    let (y, m, d) = facegate::access::rules::utc_date(now_ms);
    match facegate::access::rules::check_clock(now_ms) {
        Ok(()) => Check::ok(NAME, format!("{y:04}-{m:02}-{d:02} (UTC)")),
        Err(shown) => Check::warning(
            NAME,
            format!(
                "the system clock says {shown}: it is not set. Validity windows and weekly \
                 schedules are judged against this date, and audit events get it"
            ),
            "check network time (`timedatectl`: \"System clock synchronized: yes\"); a \
             Raspberry Pi has no battery clock and needs the network, or an RTC module",
        ),
    }
}
