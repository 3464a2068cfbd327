//! The `[access]` configuration section.

use serde::Deserialize;

use super::door::DoorConfig;
use super::policy::PolicyConfig;

pub const DEFAULT_TOML: &str = r#"
[access]
# Usable camera frames of one visit (consecutive frames of the same face; a frame without a
# face ends the visit) fused into one decision: their embeddings are averaged and the average is
# decided on once, by the same rule as the API's identify ([recognition]), calibrated for a
# visit. 3 frames at 10-15 fps is about 0.2-0.3 s.
frames = 3
# After a decision about a person, the same decision is not repeated for this long: one
# visit, one event.
cooldown_s = 5
# Anti-passback: a person granted once is refused for this long unless an exit was recorded
# for them. 0 = off.
anti_passback_s = 0
# A door open longer than this raises a held-open alarm (needs a door contact, see [hw]).
held_open_s = 30
# The time zone of the weekly schedules (and of the local times `facegate events` and the
# console read and show): an IANA name such as "Europe/Berlin", from the system's tz database
# (/usr/share/zoneinfo) or, on a board without one, the copy built into facegate. "" = the
# system's zone (TZ, else /etc/localtime; UTC with a warning when neither is set). Schedules
# follow the wall clock: a window inside the hour skipped when summer time begins does not
# open that day, one inside the hour repeated when it ends opens twice. An unknown name is a
# configuration error.
time_zone = ""
# Recognition workers: threads that each take the newest camera frame and look at it (detect,
# align, embed, search the gallery). With two, the next frame is being looked at while the
# last is still in the network, so more frames per second are seen on a multi-core board; the
# latency of one frame stays that of one look. 0 = one per CPU core, at most 4. 1..=16.
workers = 0
# The face tracker: a face followed from frame to frame (its box overlapping the last frame's)
# is embedded once per visit, and again only when it is seen better (eyes 20% further apart,
# 10 degrees more frontal, or a 1.5x sharper crop) or every `track_refresh_frames` frames; the
# frames in between reuse its newest embedding. The detector and the liveness stage still run
# on every frame. Off: every frame's face is embedded.
track_faces = true
# A tracked face is embedded again at least once every this many frames (1..=100).
track_refresh_frames = 10
# Keep the aligned face crop (112x112 JPEG, 4-6 KB) of every decision at the door with its
# audit event (`facegate events --crops DIR`, GET /v1/events/{id}/face with the admin token).
# Off by default: a face crop is biometric personal data; turn it on only with a legal basis
# and tell the people who use the door.
save_face_crops = false
# Crops older than this are deleted (the events stay, without their crop). Applies to the
# crops already stored even after save_face_crops is turned off.
face_crop_retention_days = 30
# At most this many crops are kept; beyond it the oldest are deleted first.
face_crop_max = 10000
# (reject_threshold, the "unknown face" cosine of earlier versions, is gone: the decision rule
# of [recognition] says who is unknown. An old configuration that sets it still loads, with a
# warning that it is ignored.)
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    pub frames: u32,
    pub cooldown_s: u64,
    pub anti_passback_s: u64,
    pub held_open_s: u64,
    /// IANA time zone of the schedules; empty: the system's ([`AccessConfig::time_zone`]).
    pub time_zone: String,
    pub workers: usize,
    pub track_faces: bool,
    pub track_refresh_frames: u32,
    pub save_face_crops: bool,
    pub face_crop_retention_days: u32,
    pub face_crop_max: usize,
    /// Removed (the [recognition] rule decides who is unknown): accepted so that an existing
    /// configuration still loads, ignored with a warning ([`AccessConfig::deprecated`]).
    pub reject_threshold: Option<f32>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            frames: 3,
            workers: 0,
            track_faces: true,
            track_refresh_frames: 10,
            cooldown_s: 5,
            anti_passback_s: 0,
            held_open_s: 30,
            time_zone: String::new(),
            save_face_crops: false,
            face_crop_retention_days: 30,
            face_crop_max: 10_000,
            reject_threshold: None,
        }
    }
}

impl AccessConfig {
    /// Keys of this section that are accepted but no longer do anything, with what replaced them.
    pub fn deprecated(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = self.reject_threshold {
            out.push(format!(
                "access.reject_threshold = {t} is ignored: who is unknown is now decided by the \
                 [recognition] rule (security / target_fpir); remove the line"
            ));
        }
        out
    }

    pub fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.frames) {
            return Err(format!("access.frames = {} is outside 1..100", self.frames));
        }
        if self.cooldown_s > 3600 {
            return Err(format!(
                "access.cooldown_s = {} is over 3600",
                self.cooldown_s
            ));
        }
        if self.workers > 16 {
            return Err(format!(
                "access.workers = {} is over 16 (0 = one per CPU core)",
                self.workers
            ));
        }
        if !(1..=100).contains(&self.track_refresh_frames) {
            return Err(format!(
                "access.track_refresh_frames = {} is outside 1..100",
                self.track_refresh_frames
            ));
        }
        if self.held_open_s == 0 || self.held_open_s > 86_400 {
            return Err(format!(
                "access.held_open_s = {} is outside 1..86400",
                self.held_open_s
            ));
        }
        if !self.time_zone.trim().is_empty() {
            self.time_zone()
                .map_err(|e| format!("access.time_zone = {e}"))?;
        }
        if !(1..=3650).contains(&self.face_crop_retention_days) {
            return Err(format!(
                "access.face_crop_retention_days = {} is outside 1..3650 (to keep no crops, set \
                 save_face_crops = false)",
                self.face_crop_retention_days
            ));
        }
        if !(1..=10_000_000).contains(&self.face_crop_max) {
            return Err(format!(
                "access.face_crop_max = {} is outside 1..10000000",
                self.face_crop_max
            ));
        }
        Ok(())
    }

    /// The door's time zone: `time_zone`, or for "" the system's.
    pub fn time_zone(&self) -> Result<super::when::TimeZone, super::when::UnknownZone> {
        super::when::zone_named(&self.time_zone)
    }

    /// The number of recognition workers: `workers`, or for 0 one per CPU core (at most 4).
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    }

    /// How long the audit log keeps face crops.
    pub fn crop_retention(&self) -> super::audit::CropRetention {
        super::audit::CropRetention::days(self.face_crop_retention_days, self.face_crop_max)
    }

    /// The policy's settings; `same_face` is the embedder's 1:1 threshold (a frame's face at or
    /// above it, against the visit's so far, continues the visit).
    pub fn policy(&self, same_face: f32) -> PolicyConfig {
        PolicyConfig {
            same_face,
            frames: self.frames,
            cooldown_ms: self.cooldown_s * 1000,
            anti_passback_ms: self.anti_passback_s * 1000,
        }
    }

    /// The door's face tracker settings.
    pub fn track(&self) -> crate::access::daemon::TrackConfig {
        crate::access::daemon::TrackConfig {
            enabled: self.track_faces,
            refresh_frames: self.track_refresh_frames,
        }
    }

    pub fn door(&self, unlock_ms: u64) -> DoorConfig {
        DoorConfig {
            unlock_ms,
            held_open_ms: self.held_open_s * 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_crop_settings_are_documented_off_by_default_and_range_checked() {
        for key in [
            "save_face_crops = false",
            "face_crop_retention_days = 30",
            "face_crop_max = 10000",
        ] {
            assert!(DEFAULT_TOML.contains(key), "{key}");
        }
        let d = AccessConfig::default();
        assert!(!d.save_face_crops);
        assert_eq!(
            d.crop_retention(),
            crate::access::audit::CropRetention::default()
        );
        let days0 = AccessConfig {
            face_crop_retention_days: 0,
            ..AccessConfig::default()
        };
        assert!(
            days0
                .check()
                .unwrap_err()
                .contains("save_face_crops = false")
        );
        let max0 = AccessConfig {
            face_crop_max: 0,
            ..AccessConfig::default()
        };
        assert!(max0.check().unwrap_err().contains("face_crop_max"));
        assert!(AccessConfig::default().check().is_ok());
    }

    #[test]
    fn the_time_zone_is_the_systems_unless_named_and_an_unknown_name_is_refused() {
        assert!(DEFAULT_TOML.contains("time_zone = \"\""));
        assert_eq!(AccessConfig::default().time_zone, "");
        assert!(AccessConfig::default().time_zone().is_ok());
        let berlin = AccessConfig {
            time_zone: "Europe/Berlin".into(),
            ..AccessConfig::default()
        };
        assert!(berlin.check().is_ok());
        assert_eq!(
            berlin.time_zone().unwrap().iana_name(),
            Some("Europe/Berlin")
        );
        let typo = AccessConfig {
            time_zone: "Europe/Berln".into(),
            ..AccessConfig::default()
        };
        let e = typo.check().unwrap_err();
        assert!(e.starts_with("access.time_zone = \"Europe/Berln\""), "{e}");
        assert!(e.contains("did you mean \"Europe/Berlin\""), "{e}");
        let e = crate::config::Config::parse(
            "[access]\ntime_zone = \"Nowhere/Atlantis\"\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Nowhere/Atlantis") && e.contains("IANA"), "{e}");
    }
}
