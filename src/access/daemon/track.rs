//! The face tracker of the door: a face followed from frame to frame by its box is embedded
//! once, and again only when it is seen better (closer, more frontal, sharper) or when it has
//! been followed for `refresh_frames` frames without a new embedding. The other frames of the
//! visit reuse its newest embedding: the detector (and the liveness stage) still run on every
//! frame, the embedder (three quarters of a look at the default settings) does not.
//!
//! "The same face" is the largest face of consecutive frames (in capture order, at most
//! [`MAX_GAP`] apart) whose boxes overlap by at least [`MIN_IOU`] (intersection over union). A
//! frame without a face, a usable face elsewhere in the picture, a frame decided out of order
//! (two workers) or a gap in the frames ends the track: the next face is embedded.

use std::time::{Duration, Instant};

use crate::vision::{BBox, Quality};

/// Boxes of consecutive frames overlapping at least this much are the same face.
pub const MIN_IOU: f32 = 0.5;
/// Frames further apart than this do not continue a track.
pub const MAX_GAP: Duration = Duration::from_millis(500);
/// A face is seen better, and embedded again, when its eyes are this much further apart (it
/// came closer)...
pub const CLOSER: f32 = 1.2;
/// ...or it turned this much more towards the camera (degrees of estimated yaw)...
pub const MORE_FRONTAL_DEG: f32 = 10.0;
/// ...or its aligned crop is this much sharper (variance of the Laplacian).
pub const SHARPER: f32 = 1.5;

/// The tracker's settings (`access.track_faces`, `access.track_refresh_frames`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackConfig {
    /// Off: every frame's face is embedded.
    pub enabled: bool,
    /// A tracked face is embedded at least once every this many frames (1 = every frame).
    pub refresh_frames: u32,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            enabled: true,
            refresh_frames: 10,
        }
    }
}

/// What to do with a frame's face.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Embed it (a new face, a better view, a refresh, or the tracker is off).
    Embed,
    /// The same face as the track's, not seen better: reuse the track's newest embedding.
    Reuse(Vec<f32>),
}

/// The newest embedding of the tracked face.
#[derive(Debug, Clone)]
struct Embedded {
    seq: u64,
    embedding: Vec<f32>,
    quality: Quality,
    /// Frames of the track since it was made.
    reused: u32,
}

/// Shared by the recognition workers (behind a mutex).
#[derive(Debug)]
pub struct Tracker {
    config: TrackConfig,
    /// The newest frame seen (with a face or not).
    newest: u64,
    /// The first frame of the current track.
    start: u64,
    /// The newest frame's face: its capture instant and box (`None`: no face).
    last: Option<(Instant, BBox)>,
    embedded: Option<Embedded>,
    /// Faces embedded and reused so far.
    pub embeds: u64,
    pub reuses: u64,
}

impl Tracker {
    pub fn new(config: TrackConfig) -> Tracker {
        Tracker {
            config,
            newest: 0,
            start: 0,
            last: None,
            embedded: None,
            embeds: 0,
            reuses: 0,
        }
    }

    /// Frame `seq` has no face (or none that can be used): the track ends.
    pub fn lost(&mut self, seq: u64) {
        if seq > self.newest {
            self.newest = seq;
            self.last = None;
            self.embedded = None;
        }
    }

    /// `seq` continues the track: the next frame, soon enough, its box overlapping.
    fn continues(&self, seq: u64, captured: Instant, bbox: &BBox) -> bool {
        seq > self.newest
            && self.last.as_ref().is_some_and(|(at, b)| {
                captured.saturating_duration_since(*at) <= MAX_GAP && b.iou(bbox) >= MIN_IOU
            })
    }

    /// The track's embedding may stand for this view of its face.
    fn reusable(&self, quality: &Quality) -> Option<&Embedded> {
        let refresh = self.config.refresh_frames.max(1);
        self.embedded.as_ref().filter(|e| {
            self.config.enabled && e.reused + 1 < refresh && !better(quality, &e.quality)
        })
    }

    /// The plan for frame `seq`'s largest face (usable: aligned, not refused), captured at
    /// `captured`, in `bbox`, with `quality`. A face not continuing the track starts a new one.
    pub fn plan(&mut self, seq: u64, captured: Instant, bbox: &BBox, quality: &Quality) -> Plan {
        let in_order = seq > self.newest;
        let continues = self.continues(seq, captured, bbox);
        let reuse = continues && self.reusable(quality).is_some();
        if in_order {
            self.newest = seq;
            self.last = Some((captured, *bbox));
            if !continues {
                // A new face: whatever was embedded is another track's.
                self.start = seq;
                self.embedded = None;
            }
        }
        match self.embedded.as_mut().filter(|_| reuse) {
            Some(e) => {
                e.reused += 1;
                self.reuses += 1;
                Plan::Reuse(e.embedding.clone())
            }
            None => {
                self.embeds += 1;
                Plan::Embed
            }
        }
    }

    /// [`Tracker::plan`] when it would reuse the track's embedding; otherwise `None`, and
    /// nothing changes (the caller looks closer at the frame, then asks [`Tracker::plan`]).
    pub fn reuse(
        &mut self,
        seq: u64,
        captured: Instant,
        bbox: &BBox,
        quality: &Quality,
    ) -> Option<Vec<f32>> {
        if !(self.continues(seq, captured, bbox) && self.reusable(quality).is_some()) {
            return None;
        }
        match self.plan(seq, captured, bbox, quality) {
            Plan::Reuse(e) => Some(e),
            Plan::Embed => None,
        }
    }

    /// Frame `seq`'s face was embedded: it becomes the track's newest embedding, unless the
    /// frame is from before the current track or a newer frame's embedding came first.
    pub fn embedded(&mut self, seq: u64, embedding: &[f32], quality: &Quality) {
        let in_track = self.last.is_some() && seq >= self.start;
        let newer = self.embedded.as_ref().is_none_or(|e| e.seq < seq);
        if in_track && newer {
            self.embedded = Some(Embedded {
                seq,
                embedding: embedding.to_vec(),
                quality: *quality,
                reused: 0,
            });
        }
    }
}

/// `q` is a better view of the face than `was`: closer, more frontal or sharper.
pub fn better(q: &Quality, was: &Quality) -> bool {
    q.eye_distance_px >= was.eye_distance_px * CLOSER
        || q.yaw_deg.abs() + MORE_FRONTAL_DEG <= was.yaw_deg.abs()
        || q.sharpness >= was.sharpness * SHARPER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(eyes: f32, yaw: f32, sharpness: f32) -> Quality {
        Quality {
            detector_score: 0.9,
            face_width_px: eyes * 2.5,
            eye_distance_px: eyes,
            roll_deg: 0.0,
            yaw_deg: yaw,
            sharpness,
        }
    }

    fn bbox(x: f32) -> BBox {
        BBox {
            x,
            y: 100.0,
            w: 100.0,
            h: 120.0,
        }
    }

    const MS: Duration = Duration::from_millis(33);

    #[test]
    fn a_followed_face_is_embedded_once_then_reused_until_the_refresh() {
        let mut t = Tracker::new(TrackConfig {
            enabled: true,
            refresh_frames: 4,
        });
        let t0 = Instant::now();
        let q = quality(40.0, 0.0, 100.0);
        assert_eq!(t.plan(1, t0, &bbox(100.0), &q), Plan::Embed);
        t.embedded(1, &[1.0, 0.0], &q);
        // The face drifts a little: the same face, reused three times, then embedded again.
        for seq in 2..=4 {
            let at = t0 + MS * (seq as u32 - 1);
            assert_eq!(
                t.plan(seq, at, &bbox(100.0 + seq as f32 * 3.0), &q),
                Plan::Reuse(vec![1.0, 0.0]),
                "frame {seq}"
            );
        }
        assert_eq!(t.plan(5, t0 + MS * 4, &bbox(115.0), &q), Plan::Embed);
        t.embedded(5, &[0.0, 1.0], &q);
        assert_eq!(
            t.plan(6, t0 + MS * 5, &bbox(115.0), &q),
            Plan::Reuse(vec![0.0, 1.0])
        );
        assert_eq!((t.embeds, t.reuses), (2, 4));
    }

    #[test]
    fn a_better_view_a_jump_a_gap_or_no_face_is_embedded_again() {
        let mut t = Tracker::new(TrackConfig::default());
        let t0 = Instant::now();
        let q = quality(40.0, 20.0, 100.0);
        let embed_at = |t: &mut Tracker, seq: u64, at: Instant, b: &BBox, q: &Quality| {
            let p = t.plan(seq, at, b, q);
            if p == Plan::Embed {
                t.embedded(seq, &[seq as f32], q);
            }
            p
        };
        assert_eq!(embed_at(&mut t, 1, t0, &bbox(0.0), &q), Plan::Embed);
        assert!(matches!(
            embed_at(&mut t, 2, t0 + MS, &bbox(0.0), &q),
            Plan::Reuse(_)
        ));
        // Closer (eyes 20% further apart), more frontal (yaw 20° → 5°), sharper (1.5×).
        let closer = quality(48.0, 20.0, 100.0);
        assert_eq!(
            embed_at(&mut t, 3, t0 + MS * 2, &bbox(0.0), &closer),
            Plan::Embed
        );
        let frontal = quality(48.0, 5.0, 100.0);
        assert_eq!(
            embed_at(&mut t, 4, t0 + MS * 3, &bbox(0.0), &frontal),
            Plan::Embed
        );
        let sharper = quality(48.0, 5.0, 150.0);
        assert_eq!(
            embed_at(&mut t, 5, t0 + MS * 4, &bbox(0.0), &sharper),
            Plan::Embed
        );
        // Slightly worse or the same: reused (the best view so far).
        let same = quality(47.0, 6.0, 140.0);
        assert_eq!(
            embed_at(&mut t, 6, t0 + MS * 5, &bbox(0.0), &same),
            Plan::Reuse(vec![5.0])
        );
        // A face elsewhere in the picture (no overlap): a new face.
        assert_eq!(
            embed_at(&mut t, 7, t0 + MS * 6, &bbox(300.0), &same),
            Plan::Embed
        );
        // A gap of more than MAX_GAP: not followed.
        let late = t0 + MS * 6 + MAX_GAP + MS;
        assert_eq!(embed_at(&mut t, 8, late, &bbox(300.0), &same), Plan::Embed);
        // No face ends the track.
        t.lost(9);
        assert_eq!(
            embed_at(&mut t, 10, late + MS * 2, &bbox(300.0), &same),
            Plan::Embed
        );
        // Off: every face is embedded.
        let mut off = Tracker::new(TrackConfig {
            enabled: false,
            refresh_frames: 10,
        });
        for seq in 1..5 {
            assert_eq!(
                embed_at(&mut off, seq, t0 + MS * seq as u32, &bbox(0.0), &q),
                Plan::Embed
            );
        }
    }

    #[test]
    fn asking_whether_to_reuse_changes_nothing_unless_it_does() {
        let mut t = Tracker::new(TrackConfig::default());
        let t0 = Instant::now();
        let q = quality(40.0, 0.0, 100.0);
        assert_eq!(t.reuse(1, t0, &bbox(0.0), &q), None);
        assert_eq!(t.plan(1, t0, &bbox(0.0), &q), Plan::Embed);
        t.embedded(1, &[1.0], &q);
        // A better view: not reused, and the track is still frame 1's.
        let closer = quality(50.0, 0.0, 100.0);
        assert_eq!(t.reuse(2, t0 + MS, &bbox(0.0), &closer), None);
        assert_eq!((t.embeds, t.reuses), (1, 0));
        assert_eq!(t.plan(2, t0 + MS, &bbox(0.0), &closer), Plan::Embed);
        t.embedded(2, &[2.0], &closer);
        assert_eq!(
            t.reuse(3, t0 + MS * 2, &bbox(0.0), &closer),
            Some(vec![2.0])
        );
        assert_eq!((t.embeds, t.reuses), (2, 1));
    }

    #[test]
    fn frames_out_of_order_are_embedded_and_do_not_move_the_track() {
        let mut t = Tracker::new(TrackConfig::default());
        let t0 = Instant::now();
        let q = quality(40.0, 0.0, 100.0);
        assert_eq!(t.plan(2, t0 + MS, &bbox(0.0), &q), Plan::Embed);
        t.embedded(2, &[2.0], &q);
        // Frame 1 (another worker, late): embedded, and its embedding is not the track's.
        assert_eq!(t.plan(1, t0, &bbox(0.0), &q), Plan::Embed);
        t.embedded(1, &[1.0], &q);
        assert_eq!(
            t.plan(3, t0 + MS * 2, &bbox(0.0), &q),
            Plan::Reuse(vec![2.0])
        );
        // An embedding that arrives after a newer frame started a new track is dropped.
        assert_eq!(
            t.plan(4, t0 + MS * 3, &bbox(0.0), &q),
            Plan::Reuse(vec![2.0])
        );
        assert_eq!(t.plan(5, t0 + MS * 4, &bbox(400.0), &q), Plan::Embed);
        t.embedded(4, &[4.0], &q);
        assert_eq!(t.plan(6, t0 + MS * 5, &bbox(400.0), &q), Plan::Embed);
    }
}
