//! The open-set protocol: a door sees enrolled people and strangers, and must admit the first
//! and nobody else. Measured as FNIR (mated searches not returning the right person at the
//! threshold) and FPIR (non-mated searches returning anybody at the threshold).
//!
//! Fixed protocol (`facegate eval --open-set DIR`, DIR = `<person>/<photos>`):
//! - Identities (sorted by name) are shuffled with `seed`; the first `calibration_share` of them
//!   form the CALIBRATION part, the others the REPORT part. Nothing reported is tuned on the
//!   report part: thresholds come from the calibration part's impostor scores, the margin
//!   and the cohort rule (`super::open_cohort`) are chosen on the calibration part.
//! - Each of `rounds` rounds (seeded) builds a gallery of `gallery` persons from the report part:
//!   half of the persons with two or more photos are enrolled ("mated"), the other half are
//!   strangers; persons with one photo fill the gallery up to its size (distractors, one photo
//!   each) and the rest are strangers too.
//! - A mated person is enrolled from up to `enroll_photos` of their photos (shuffled, at least
//!   one photo kept for probing; only photos that pass the enrollment checks), templates kept
//!   apart or fused (mean of normalised embeddings). Every other photo is a mated probe.
//!   Every photo of a stranger is a non-mated probe.
//! - A visit (the door) fuses up to `visit_frames` probe photos of one person into one probe
//!   (mean of the normalised embeddings of the frames that gave a face). Consecutive door frames
//!   are much more alike than different photos of a person, so this is an optimistic stand-in
//!   for the frames of one visit.
//! - A photo where no face is found, or whose face the door's quality limits refuse, counts as
//!   it would at a door: a miss for a mated probe, never an accept for a non-mated one.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::ImageOutcome;
use crate::access::calibration::ProbeKind;
use crate::access::cohort::{CohortRule, MAX_K};

pub use super::open_calibrate::{best_margin, calibrate, impostor_scores, tail};
pub use super::open_data::{Identity, apply_errata, read_identities};
pub use super::open_metrics::{Counts, Point, at_fpir, counts, det, point, wrong_person};

/// SplitMix64: small, seeded, reproducible on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Which part of the protocol an identity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Calibration,
    Report,
}

/// The fixed split: identity `i` (in name order) belongs to `split[i]`.
pub fn split(count: usize, seed: u64, calibration_share: f64) -> Vec<Part> {
    let mut order: Vec<usize> = (0..count).collect();
    Rng::new(seed).shuffle(&mut order);
    let cal = (count as f64 * calibration_share).round() as usize;
    let mut parts = vec![Part::Report; count];
    for &i in &order[..cal.min(count)] {
        parts[i] = Part::Calibration;
    }
    parts
}

/// Why a photo gave no embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No face found, or the image could not be read.
    NoFace,
    /// A face, refused by the quality limits (too small, turned).
    Refused,
}

/// One photo: its normalised embedding or why there is none.
pub type Photo = Result<Vec<f32>, Failure>;

/// A person with their photos' outcomes.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub photos: Vec<Photo>,
}

/// Pair identities with their photos' outcomes (photos missing from `images` are dropped).
pub fn persons(ids: &[Identity], images: &HashMap<PathBuf, ImageOutcome>) -> Vec<Person> {
    ids.iter()
        .map(|id| Person {
            name: id.name.clone(),
            photos: id
                .photos
                .iter()
                .filter_map(|p| match images.get(p)? {
                    ImageOutcome::Embedded(e) => Some(Ok(unit(&e.0))),
                    ImageOutcome::Missing => None,
                    ImageOutcome::Failed(_) => Some(Err(Failure::NoFace)),
                    ImageOutcome::Refused(_) => Some(Err(Failure::Refused)),
                })
                .collect(),
        })
        .collect()
}

pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// Mean of unit vectors, normalised (`None` for none).
pub fn fuse<'a>(vs: impl IntoIterator<Item = &'a Vec<f32>>) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f32>> = None;
    for v in vs {
        match &mut sum {
            None => sum = Some(v.clone()),
            Some(s) => s.iter_mut().zip(v).for_each(|(a, b)| *a += b),
        }
    }
    sum.map(|s| unit(&s))
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How one round is built and searched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Setup {
    pub gallery: usize,
    /// Enrollment photos per mated person (at most; one photo is always kept for probing).
    pub enroll_photos: usize,
    /// Fuse a person's enrollment photos into one template.
    pub fuse_templates: bool,
    /// Frames fused per visit (1 = every photo is its own probe).
    pub visit_frames: usize,
}

/// One search: its kind and the two best persons' scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub mated: bool,
    /// No usable face: a miss when mated, a reject when not.
    pub failed: Option<Failure>,
    /// The best person is the right one (mated searches).
    pub correct: bool,
    pub best: f32,
    /// Best score of another person (-1 when there is none).
    pub second: f32,
    /// Scores of the next persons after the best, best first (`others[..n_others]`; the first
    /// is `second`): the cohort of [`CohortRule`].
    pub others: [f32; MAX_K],
    pub n_others: u8,
}

impl Search {
    /// The next persons' scores after the best.
    pub fn others(&self) -> &[f32] {
        &self.others[..usize::from(self.n_others)]
    }

    /// This search with its best score replaced by the cohort-normalised one (the margin then
    /// no longer applies: `second` is set to minus infinity).
    pub fn normalised(&self, rule: &CohortRule) -> Search {
        Search {
            best: if self.failed.is_some() {
                self.best
            } else {
                rule.score(self.best, self.others())
            },
            second: f32::NEG_INFINITY,
            ..*self
        }
    }

    /// Whether the search returns its best person at `threshold` and `margin`.
    pub fn accepted(&self, threshold: f32, margin: f32) -> bool {
        self.failed.is_none() && self.best >= threshold && self.best - self.second >= margin
    }
}

/// A gallery: templates and their owners.
struct Gallery {
    templates: Vec<Vec<f32>>,
    owner: Vec<usize>,
    persons: usize,
}

impl Gallery {
    /// The best person, their score, and the next persons' scores (best first, at most
    /// [`MAX_K`]; `others[0]` is the second-best, -1 when there is none).
    fn search(&self, probe: &[f32], scratch: &mut Vec<f32>) -> (usize, f32, [f32; MAX_K], u8) {
        scratch.clear();
        scratch.resize(self.persons, -1.0);
        for (t, &o) in self.templates.iter().zip(&self.owner) {
            let s = dot(probe, t);
            if s > scratch[o] {
                scratch[o] = s;
            }
        }
        let (mut best, mut b1) = (0, -1.0f32);
        for (i, &s) in scratch.iter().enumerate() {
            if s > b1 {
                b1 = s;
                best = i;
            }
        }
        if best < scratch.len() {
            scratch.swap_remove(best);
        }
        let n = scratch.len().min(MAX_K);
        if n > 0 && n < scratch.len() {
            scratch.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a));
        }
        scratch[..n].sort_by(|a, b| b.total_cmp(a));
        let mut others = [-1.0f32; MAX_K];
        others[..n].copy_from_slice(&scratch[..n]);
        (best, b1, others, n as u8)
    }
}

/// Probes: the photos (or visits) of one person.
pub(crate) fn probes(photos: &[&Photo], frames: usize) -> Vec<Photo> {
    if frames <= 1 {
        return photos.iter().map(|p| (*p).clone()).collect();
    }
    photos
        .chunks(frames)
        .map(|chunk| {
            let good: Vec<&Vec<f32>> = chunk.iter().filter_map(|p| p.as_ref().ok()).collect();
            match fuse(good) {
                Some(f) => Ok(f),
                None => Err(if chunk.contains(&&Err(Failure::Refused)) {
                    Failure::Refused
                } else {
                    Failure::NoFace
                }),
            }
        })
        .collect()
}

/// What the protocol could not use, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoundStats {
    pub mated_persons: usize,
    pub distractors: usize,
    pub stranger_persons: usize,
    pub templates: usize,
}

/// Enrollment of one person: the photos used for templates, and the remaining probe photos.
fn enroll<'a>(
    photos: &'a [Photo],
    rng: &mut Rng,
    max: usize,
) -> (Vec<&'a Vec<f32>>, Vec<&'a Photo>) {
    let mut order: Vec<usize> = (0..photos.len()).collect();
    rng.shuffle(&mut order);
    let mut enrolled = Vec::new();
    let mut rest = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let left_after = order.len() - k - 1;
        match &photos[i] {
            Ok(e) if enrolled.len() < max && (left_after > 0 || !rest.is_empty()) => {
                enrolled.push(e)
            }
            p => rest.push(p),
        }
    }
    (enrolled, rest)
}

/// Run `rounds` rounds of the protocol over `people` (one part of the split).
pub fn run(
    people: &[&Person],
    setup: &Setup,
    seed: u64,
    rounds: usize,
) -> Result<(Vec<Search>, RoundStats), String> {
    let mut searches = Vec::new();
    let mut stats = RoundStats::default();
    let usable = |p: &Person| p.photos.iter().any(|x| x.is_ok());
    for round in 0..rounds {
        let mut rng = Rng::new(seed ^ (0xA5A5_0000 + round as u64));
        let mut multi: Vec<&Person> = people
            .iter()
            .copied()
            .filter(|p| p.photos.len() >= 2 && usable(p))
            .collect();
        let mut single: Vec<&Person> = people
            .iter()
            .copied()
            .filter(|p| p.photos.len() == 1)
            .collect();
        rng.shuffle(&mut multi);
        rng.shuffle(&mut single);
        let mated_n = (multi.len() / 2).min(setup.gallery);
        let (mated, strangers_multi) = multi.split_at(mated_n);
        let need = setup.gallery - mated_n;
        let single_usable: Vec<&Person> = single.iter().copied().filter(|p| usable(p)).collect();
        if single_usable.len() < need {
            return Err(format!(
                "a gallery of {} needs {} one-photo persons besides {} mated ones; this part has {}",
                setup.gallery,
                need,
                mated_n,
                single_usable.len()
            ));
        }
        let distractors = &single_usable[..need];
        let strangers_single: Vec<&Person> = single
            .iter()
            .copied()
            .filter(|p| !distractors.iter().any(|d| std::ptr::eq(*d, *p)))
            .collect();

        let mut g = Gallery {
            templates: Vec::new(),
            owner: Vec::new(),
            persons: 0,
        };
        let mut mated_probes: Vec<(usize, Vec<Photo>)> = Vec::new();
        for p in mated {
            let (templates, rest) = enroll(&p.photos, &mut rng, setup.enroll_photos.max(1));
            let id = g.persons;
            g.persons += 1;
            if setup.fuse_templates {
                if let Some(f) = fuse(templates.iter().copied()) {
                    g.templates.push(f);
                    g.owner.push(id);
                }
            } else {
                for t in templates {
                    g.templates.push(t.clone());
                    g.owner.push(id);
                }
            }
            mated_probes.push((id, probes(&rest, setup.visit_frames)));
        }
        for d in distractors {
            if let Some(Ok(e)) = d.photos.iter().find(|x| x.is_ok()) {
                g.templates.push(e.clone());
                g.owner.push(g.persons);
                g.persons += 1;
            }
        }
        stats.mated_persons += mated.len();
        stats.distractors += distractors.len();
        stats.stranger_persons += strangers_multi.len() + strangers_single.len();
        stats.templates += g.templates.len();

        let mut scratch = Vec::new();
        let mut record = |probe: &Photo, mated: Option<usize>| {
            let s = match probe {
                Err(f) => Search {
                    mated: mated.is_some(),
                    failed: Some(*f),
                    correct: false,
                    best: -1.0,
                    second: -1.0,
                    others: [-1.0; MAX_K],
                    n_others: 0,
                },
                Ok(e) => {
                    let (who, best, others, n_others) = g.search(e, &mut scratch);
                    Search {
                        mated: mated.is_some(),
                        failed: None,
                        correct: mated == Some(who),
                        best,
                        second: others[0],
                        others,
                        n_others,
                    }
                }
            };
            searches.push(s);
        };
        for (id, ps) in &mated_probes {
            for p in ps {
                record(p, Some(*id));
            }
        }
        for s in strangers_multi.iter().chain(strangers_single.iter()) {
            let all: Vec<&Photo> = s.photos.iter().collect();
            for p in probes(&all, setup.visit_frames) {
                record(&p, None);
            }
        }
    }
    Ok((searches, stats))
}

/// The probe kind a setup simulates.
pub fn probe_kind(setup: &Setup) -> ProbeKind {
    if setup.visit_frames > 1 {
        ProbeKind::Visit
    } else {
        ProbeKind::Image
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::calibration::Calibration;
    use std::path::Path;

    fn s(mated: bool, correct: bool, best: f32, second: f32) -> Search {
        let mut others = [-1.0; MAX_K];
        others[0] = second;
        Search {
            mated,
            failed: None,
            correct,
            best,
            second,
            others,
            n_others: 1,
        }
    }

    #[test]
    fn errata_merge_and_drop() {
        let id = |n: &str, k: usize| Identity {
            name: n.into(),
            photos: (1..=k)
                .map(|i| PathBuf::from(format!("{n}/{n}_{i:04}.jpg")))
                .collect(),
        };
        let mut ids = vec![id("A", 2), id("B", 1), id("C", 1), id("D", 1)];
        let n = apply_errata(
            &mut ids,
            "# comment\nsame A B\ndrop C/C_0001.jpg\n",
            Path::new("e"),
        )
        .unwrap();
        assert_eq!(n, 2);
        let names: Vec<&str> = ids.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["A", "D"]);
        assert_eq!(ids[0].photos.len(), 3);
        assert!(apply_errata(&mut ids, "merge A B\n", Path::new("e")).is_err());
    }

    #[test]
    fn split_is_fixed_disjoint_and_sized() {
        let a = split(300, 13, 1.0 / 3.0);
        assert_eq!(a, split(300, 13, 1.0 / 3.0));
        assert_ne!(a, split(300, 14, 1.0 / 3.0));
        assert_eq!(a.iter().filter(|p| **p == Part::Calibration).count(), 100);
    }

    #[test]
    fn failures_are_misses_when_mated_and_rejects_when_not() {
        let mut v = vec![s(true, true, 0.9, 0.1), s(false, false, 0.5, 0.1)];
        v.push(Search {
            failed: Some(Failure::NoFace),
            ..s(true, false, -1.0, -1.0)
        });
        v.push(Search {
            failed: Some(Failure::Refused),
            ..s(false, false, -1.0, -1.0)
        });
        for t in [-1.0, 0.0, 0.4, 0.95] {
            let p = point(&v, t, 0.0);
            // One of two mated searches always fails; the failed non-mated one never counts.
            assert!(p.fnir >= 0.5, "{p:?}");
            assert!(p.fpir <= 0.5, "{p:?}");
        }
        let c = counts(&v);
        assert_eq!((c.mated_no_face, c.non_mated_refused), (1, 1));
    }

    #[test]
    fn at_fpir_and_margin() {
        // 4 strangers at 0.3..0.6, two mated at 0.5 and 0.8 (one ambiguous).
        let v = vec![
            s(false, false, 0.3, 0.1),
            s(false, false, 0.4, 0.35),
            s(false, false, 0.5, 0.1),
            s(false, false, 0.6, 0.58),
            s(true, true, 0.8, 0.2),
            s(true, true, 0.55, 0.1),
        ];
        let p = at_fpir(&v, 0.0, 0.0);
        assert!(p.fpir == 0.0 && p.threshold > 0.6);
        assert_eq!(p.fnir, 0.5);
        // A margin of 0.05 removes the ambiguous 0.6 stranger: threshold 0.5+, FNIR 0.
        let p = at_fpir(&v, 0.0, 0.05);
        assert_eq!(p.fpir, 0.0);
        assert_eq!(p.fnir, 0.0, "{p:?}");
        assert_eq!(best_margin(&v, 0.0), 0.04);
        let d = det(&v, 0.0);
        assert!(d.windows(2).all(|w| w[1].fpir >= w[0].fpir));
    }

    #[test]
    fn enrollment_keeps_a_probe_and_visits_fuse() {
        let photos: Vec<Photo> = vec![Ok(vec![1.0, 0.0]), Ok(vec![0.0, 1.0]), Err(Failure::NoFace)];
        let mut rng = Rng::new(1);
        let (t, rest) = enroll(&photos, &mut rng, 5);
        assert_eq!(t.len() + rest.len(), 3);
        assert!(!rest.is_empty());
        let all: Vec<&Photo> = photos.iter().collect();
        let v = probes(&all, 3);
        assert_eq!(v.len(), 1);
        let f = v[0].as_ref().unwrap();
        assert!((f[0] - f[1]).abs() < 1e-6 && (f[0] - 0.70710677).abs() < 1e-5);
        let none: Vec<Photo> = vec![Err(Failure::Refused)];
        let r: Vec<&Photo> = none.iter().collect();
        assert_eq!(probes(&r, 3), vec![Err(Failure::Refused)]);
    }

    #[test]
    fn a_tail_is_monotone_and_reaches_1e_9() {
        let mut rng = Rng::new(3);
        let scores: Vec<f32> = (0..200_000)
            .map(|_| {
                // Sum of uniforms: a bell shape on about [-0.6, 0.6].
                (0..12)
                    .map(|_| (rng.next_u64() % 10_000) as f32 / 10_000.0 - 0.5)
                    .sum::<f32>()
                    / 10.0
            })
            .collect();
        let t = tail(scores, None).unwrap();
        assert!(t.fmr.last().unwrap() <= &1.01e-9);
        assert!(t.score.windows(2).all(|w| w[1] > w[0]));
        assert!(t.fmr.windows(2).all(|w| w[1] < w[0]));
        let c = Calibration {
            protocol: String::new(),
            image: t,
            visit: None,
        };
        assert!(c.check().is_ok());
    }
}
