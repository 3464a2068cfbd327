//! How `facegate events` prints: a table or JSON lines, and the face crops written to a folder.

use super::*;

/// One line of `--json`: the event as the API gives it, its local time, the person's name.
#[derive(Serialize)]
pub(super) struct JsonLine<'a> {
    #[serde(flatten)]
    pub(super) event: &'a Event,
    /// RFC 3339 with the local offset.
    pub(super) time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
}

/// Table or JSON lines.
pub(super) struct Output<'a> {
    pub(super) json: bool,
    pub(super) zone: &'a TimeZone,
    pub(super) header_done: bool,
}

impl<'a> Output<'a> {
    pub(super) fn new(args: &EventsArgs, zone: &'a TimeZone) -> Output<'a> {
        Output {
            json: args.json,
            zone,
            header_done: false,
        }
    }

    pub(super) fn print(&mut self, reader: &mut Reader, events: &[Event]) -> Result<()> {
        let ids: BTreeSet<&str> = events.iter().filter_map(|e| e.person.as_deref()).collect();
        let names = reader.names(&ids.into_iter().collect::<Vec<_>>());
        let mut stdout = std::io::stdout().lock();
        if self.json {
            for e in events {
                let line = JsonLine {
                    event: e,
                    time: when::format_rfc3339(e.time_ms, self.zone),
                    name: e
                        .person
                        .as_ref()
                        .and_then(|p| names.get(p))
                        .map(String::as_str),
                };
                writeln!(stdout, "{}", serde_json::to_string(&line)?)?;
            }
            return Ok(stdout.flush()?);
        }
        let rows: Vec<[String; 7]> = events.iter().map(|e| self.row(e, &names)).collect();
        let header = [
            "TIME", "EVENT", "OUTCOME", "PERSON", "SCORE", "QUALITY", "REASON",
        ]
        .map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        // Follow mode prints a header once; later rows are not re-aligned.
        let lines = if self.header_done {
            rows
        } else {
            std::iter::once(header).chain(rows).collect()
        };
        self.header_done = true;
        for r in lines {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths.iter()).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', *w - c.chars().count() + 2));
                }
            }
            writeln!(stdout, "{}", line.trim_end())?;
        }
        Ok(stdout.flush()?)
    }

    pub(super) fn row(&self, e: &Event, names: &HashMap<String, String>) -> [String; 7] {
        let source = e.source.as_str();
        let action = match e.action {
            Action::Access => "",
            Action::Verify => " verify",
            Action::Identify => " identify",
            Action::Enroll => " enroll",
            Action::DeletePerson => " delete person",
            Action::DeleteFace => " delete face",
            Action::Unlock => " unlock",
        };
        let person = match &e.person {
            Some(p) => match names.get(p) {
                Some(n) if n != p => format!("{p} ({n})"),
                _ => p.clone(),
            },
            None => "-".into(),
        };
        let quality = e.quality.map_or("-".into(), |q| {
            format!(
                "eyes {:.0}px yaw {:+.0}° sharp {:.0}",
                q.eye_distance_px, q.yaw_deg, q.sharpness
            )
        });
        let reason = match (&e.reason, e.face_crop) {
            (Some(r), true) => format!("{r} [face crop]"),
            (Some(r), false) => r.clone(),
            (None, true) => "[face crop]".into(),
            (None, false) => "-".into(),
        };
        [
            when::format_local(e.time_ms, self.zone),
            format!("{source}{action}"),
            e.outcome.as_str().to_owned(),
            person,
            e.score.map_or("-".into(), |s| format!("{s:.3}")),
            quality,
            reason,
        ]
    }
}

pub(super) fn write_crops(reader: &mut Reader, dir: &Path, events: &[Event]) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for e in events.iter().filter(|e| e.face_crop) {
        let Some(jpeg) = reader.crop(e.id)? else {
            // Deleted by the retention since it was listed.
            continue;
        };
        let path = dir.join(format!("{}.jpg", e.id));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // A face is personal data: readable by the owner only.
            options.mode(0o600);
        }
        options
            .open(&path)
            .and_then(|mut f| f.write_all(&jpeg))
            .with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}
