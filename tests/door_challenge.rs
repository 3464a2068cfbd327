//! The door's head-turn challenge end to end (`[liveness] challenge = "turn"`): two people
//! enrolled from ORL / AT&T photos (`../shared/faces/att_faces`), and a camera that plays the
//! visitor: it watches the display, and when the door asks for a head turn it answers with
//! photos of the same person in another head pose (ORL pose photos stand in for a real head
//! turn: each sN has the same person looking left and right), or as an attacker would (the
//! wrong way, not at all, a photo moved in the hand, a photo turned in the hand).
//!
//! The passive network is set to "warn" here: ORL photos are grey (the network is a colour
//! network; README, "Liveness") and this test is about the challenge alone.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facegate::access::daemon::Record;
use facegate::access::decision::Refusal;
use facegate::access::policy::Verdict;
use facegate::camera::{CameraError, Frame, FrameSource};
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson};
use facegate::hw::{Hardware, HwConfig, MemoryHardware, Screen};
use facegate::vision::liveness::{ChallengeKind, LivenessConfig, Mode};
use image::{Rgb, RgbImage};

const THRESHOLD: f32 = 0.4122;
const TIMEOUT_MS: u64 = 2500;
const FRAME_MS: u64 = 200;

/// An ORL photo (92x112 grey) as a 640x480 door-camera frame: enlarged 3x, centred on its own
/// background's grey.
fn orl_frame(path: &Path) -> RgbImage {
    let g = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    let (w, h) = (g.width() * 3, g.height() * 3);
    let big = image::imageops::resize(&g, w, h, image::imageops::FilterType::Triangle);
    let border: u64 = (0..g.width())
        .map(|x| u64::from(g.get_pixel(x, 0)[0]) + u64::from(g.get_pixel(x, g.height() - 1)[0]))
        .sum();
    let bg = (border / (2 * u64::from(g.width()))) as u8;
    let mut out = RgbImage::from_pixel(640, 480, Rgb([bg; 3]));
    let (ox, oy) = ((640 - w) / 2, (480 - h) / 2);
    for (x, y, p) in big.enumerate_pixels() {
        out.put_pixel(ox + x, oy + y, Rgb([p[0]; 3]));
    }
    out
}

/// `src` seen through `to_src` (output pixel → source pixel), bilinear; outside the source
/// the corner pixel's colour (the scene behind the photo).
fn render(src: &RgbImage, to_src: impl Fn(f32, f32) -> (f32, f32)) -> RgbImage {
    let bg = *src.get_pixel(0, 0);
    let (w, h) = src.dimensions();
    RgbImage::from_fn(w, h, |u, v| {
        let (x, y) = to_src(u as f32 + 0.5, v as f32 + 0.5);
        let (x, y) = (x - 0.5, y - 0.5);
        if x < 0.0 || y < 0.0 || x >= (w - 1) as f32 || y >= (h - 1) as f32 {
            return bg;
        }
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let p = |dx, dy| src.get_pixel(x0 + dx, y0 + dy).0;
        let mut out = [0u8; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let top = f32::from(p(0, 0)[c]) * (1.0 - fx) + f32::from(p(1, 0)[c]) * fx;
            let bottom = f32::from(p(0, 1)[c]) * (1.0 - fx) + f32::from(p(1, 1)[c]) * fx;
            *o = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
        Rgb(out)
    })
}

/// The photo in `frame` moved in its own plane: shifted, zoomed and turned about the centre.
fn moved_in_plane(frame: &RgbImage, dx: f32, dy: f32, zoom: f32, roll: f32) -> RgbImage {
    let (cx, cy) = (320.0, 240.0);
    let (c, s) = (roll.cos(), roll.sin());
    render(frame, |u, v| {
        let (x, y) = ((u - cx - dx) / zoom, (v - cy - dy) / zoom);
        (c * x + s * y + cx, -s * x + c * y + cy)
    })
}

/// The photo in `frame` turned in the hand by `yaw` radians about its vertical middle line,
/// seen in perspective by a camera whose focal length equals its distance (1200 px).
fn turned_in_hand(frame: &RgbImage, yaw: f32) -> RgbImage {
    let (cx, cy, d) = (320.0, 240.0, 1200.0);
    let (c, s) = (yaw.cos(), yaw.sin());
    render(frame, |u, v| {
        let (u, v) = (u - cx, v - cy);
        let x = u * d / (d * c + u * s);
        let y = v * (d - x * s) / d;
        (x + cx, y + cy)
    })
}

/// How the visitor answers the door.
enum Answer {
    /// Turns the head the way the display asks (ORL pose photos for left and right).
    AsAsked {
        left: Vec<RgbImage>,
        right: Vec<RgbImage>,
    },
    /// Turns the other way.
    Wrong {
        left: Vec<RgbImage>,
        right: Vec<RgbImage>,
    },
    /// Keeps looking at the camera.
    Still,
    /// Whatever is asked: these frames (a photo handled by an attacker).
    Frames(Vec<RgbImage>),
}

struct Visit {
    front: RgbImage,
    answer: Answer,
}

/// The camera in front of the door: for each visit, the frontal face until the display asks
/// something or decides, the answer until it decides, then an empty scene. Paced at
/// `FRAME_MS`.
struct Visitor {
    visits: Vec<Visit>,
    mem: MemoryHardware,
    empty: RgbImage,
    at: usize,
    phase: u8,
    step: usize,
    screens_before: usize,
    seq: u64,
    next: Instant,
    asked: Vec<bool>,
}

impl Visitor {
    fn new(visits: Vec<Visit>, mem: MemoryHardware, empty: RgbImage) -> Visitor {
        Visitor {
            visits,
            mem,
            empty,
            at: 0,
            phase: 0,
            step: 0,
            screens_before: 0,
            seq: 0,
            next: Instant::now(),
            asked: Vec::new(),
        }
    }

    /// Screens shown since this visit began.
    fn screens(&self) -> Vec<Screen> {
        self.mem.screens().split_off(self.screens_before)
    }

    fn image(&mut self) -> Option<RgbImage> {
        loop {
            let visit = self.visits.get(self.at)?;
            let screens = self.screens();
            let decided = screens
                .iter()
                .any(|s| matches!(s, Screen::Granted { .. } | Screen::Denied { .. }));
            let asked = screens.iter().find_map(|s| match s {
                Screen::TurnHead { left } => Some(*left),
                _ => None,
            });
            match self.phase {
                // The frontal face, until asked or decided (at most 20 frames).
                0 if asked.is_none() && !decided && self.step < 20 => {
                    self.step += 1;
                    return Some(visit.front.clone());
                }
                0 => {
                    self.phase = if decided { 2 } else { 1 };
                    self.step = 0;
                    if let Some(left) = asked {
                        self.asked.push(left);
                    }
                }
                // The answer, until decided (at most the timeout and 2 s more).
                1 if !decided && self.step < ((TIMEOUT_MS + 2000) / FRAME_MS) as usize => {
                    let left = asked.unwrap_or(true);
                    let frames: &[RgbImage] = match &visit.answer {
                        Answer::AsAsked { left: l, right: r } => {
                            if left {
                                l
                            } else {
                                r
                            }
                        }
                        Answer::Wrong { left: l, right: r } => {
                            if left {
                                r
                            } else {
                                l
                            }
                        }
                        Answer::Still => std::slice::from_ref(&visit.front),
                        Answer::Frames(f) => f,
                    };
                    // Each answer frame twice, then the last one held.
                    let i = (self.step / 2).min(frames.len() - 1);
                    self.step += 1;
                    return Some(frames[i].clone());
                }
                1 => {
                    self.phase = 2;
                    self.step = 0;
                }
                // The visitor leaves: an empty scene.
                _ if self.step < 8 => {
                    self.step += 1;
                    return Some(self.empty.clone());
                }
                _ => {
                    self.at += 1;
                    self.phase = 0;
                    self.step = 0;
                    self.screens_before = self.mem.screens().len();
                }
            }
        }
    }
}

impl FrameSource for Visitor {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next = Instant::now() + Duration::from_millis(FRAME_MS);
        let Some(image) = self.image() else {
            eprintln!("asked (left?): {:?}", self.asked);
            return Err(CameraError::EndOfStream {
                what: "the visits".into(),
            });
        };
        self.seq += 1;
        Ok(Frame {
            image,
            captured: Instant::now(),
            seq: self.seq,
        })
    }

    fn describe(&self) -> String {
        "a visitor answering the display".into()
    }
}

#[test]
fn a_head_turn_as_asked_opens_and_pictures_or_wrong_turns_are_refused() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let orl = faces.join("att_faces");
    let photo = |s: &str, i: u32| orl_frame(&orl.join(format!("{s}/{i}.pgm")));
    let dir = common::tmpdir("door-challenge");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = LivenessConfig {
        door: Mode::Warn,
        challenge: ChallengeKind::Turn,
        challenge_timeout_ms: TIMEOUT_MS,
        ..LivenessConfig::default()
    };
    config.check().unwrap();
    let models = common::models()
        .clone()
        .with_liveness(&common::repo().join("models"), &config)
        .unwrap();

    // Enroll s1 and s4 from a frontal photo each.
    let mut p = common::pipeline();
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    for (id, enrol) in [("s1", 3), ("s4", 7)] {
        let file = dir.join(format!("{id}.png"));
        photo(id, enrol).save(&file).unwrap();
        let e = common::embed_largest(&mut p, &file);
        rt.block_on(async {
            cache
                .create_person(NewPerson {
                    id: Some(id.into()),
                    name: format!("Person {id}"),
                    ..NewPerson::default()
                })
                .await
                .unwrap();
            cache.add_templates(id, vec![e.0]).await.unwrap();
        });
    }

    // The ORL pose photos picked by eye (and by the detector's yaw): s1/2 and s1/5 look to
    // the person's left, s1/4 and s1/6 to their right; s4/10 and s4/5 left, s4/6 and s4/3
    // right.
    let s1 = || Answer::AsAsked {
        left: vec![photo("s1", 2), photo("s1", 5)],
        right: vec![photo("s1", 4), photo("s1", 6)],
    };
    let s4 = Answer::AsAsked {
        left: vec![photo("s4", 5), photo("s4", 10)],
        right: vec![photo("s4", 3), photo("s4", 6)],
    };
    let front = photo("s1", 1);
    let in_plane: Vec<RgbImage> = [
        (0.0, 0.0, 1.0, 0.0),
        (25.0, 5.0, 1.05, 0.08),
        (50.0, 10.0, 1.12, 0.15),
        (10.0, -10.0, 0.95, -0.1),
        (-30.0, 0.0, 0.9, -0.2),
    ]
    .iter()
    .map(|&(dx, dy, z, r)| moved_in_plane(&front, dx, dy, z, r))
    .collect();
    let in_hand: Vec<RgbImage> = [0.0f32, 15.0, 30.0, 40.0, 20.0, -20.0, -40.0]
        .iter()
        .map(|d| turned_in_hand(&front, d.to_radians()))
        .collect();
    let visits = vec![
        Visit {
            front: front.clone(),
            answer: s1(),
        },
        Visit {
            front: photo("s4", 1),
            answer: s4,
        },
        Visit {
            front: front.clone(),
            answer: Answer::Wrong {
                left: vec![photo("s1", 2), photo("s1", 5)],
                right: vec![photo("s1", 4), photo("s1", 6)],
            },
        },
        Visit {
            front: front.clone(),
            answer: Answer::Still,
        },
        Visit {
            front: front.clone(),
            answer: Answer::Frames(in_plane),
        },
        Visit {
            front: front.clone(),
            answer: Answer::Frames(in_hand),
        },
        Visit {
            front: front.clone(),
            answer: s1(),
        },
    ];
    let empty = image::open(common::fixture("no_face_coffee.jpg"))
        .unwrap()
        .to_rgb8();
    let empty = image::imageops::resize(&empty, 640, 480, image::imageops::FilterType::Triangle);

    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let camera = Visitor::new(visits, mem.clone(), empty);
    let config = common::replay_config(THRESHOLD, 1000, 200);
    let records = common::replay_door(
        &models,
        cache.clone() as Arc<dyn Gallery>,
        &rt,
        hw,
        camera,
        config,
    );

    let decisions: Vec<&Verdict> = records
        .iter()
        .filter_map(|r| match r {
            Record::Decision { verdict, .. } => Some(verdict),
            _ => None,
        })
        .collect();
    for d in &decisions {
        eprintln!("{d:?}");
    }
    let reason = |v: &Verdict| match v {
        Verdict::Granted { person, .. } => format!("granted {person}"),
        Verdict::Denied {
            person: Some(p),
            reason: Refusal::Challenge { detail },
            ..
        } => format!("{p}: {detail}"),
        other => format!("{other:?}"),
    };
    let got: Vec<String> = decisions.iter().map(|v| reason(v)).collect();
    assert_eq!(
        got,
        [
            "granted s1",
            "granted s4",
            "s1: head turn not seen",
            "s1: head turn not seen",
            "s1: head turn not seen",
            "s1: turn looked like a flat picture",
            "granted s1",
        ],
        "{decisions:#?}"
    );
    // The display asked for each turn and showed each refusal.
    let screens = mem.screens();
    let asked = screens
        .iter()
        .filter(|s| matches!(s, Screen::TurnHead { .. }))
        .count();
    assert!(asked >= 7, "{screens:?}");
    for why in ["head turn not seen", "turn looked like a flat picture"] {
        assert!(
            screens
                .iter()
                .any(|s| matches!(s, Screen::Denied { reason } if reason == why)),
            "{why}: {screens:?}"
        );
    }
    let unlocks = mem.relay.edges().iter().filter(|e| e.high).count();
    assert_eq!(unlocks, 3, "the door opened for the real turns only");

    // Audited: each refusal is a denied access event with its reason.
    let events = common::audited(&dir, &records);
    let refused: Vec<&str> = events
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .filter(|r| r.contains("head turn") || r.contains("flat picture"))
        .collect();
    assert_eq!(refused.len(), 4, "{:#?}", events);
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The figures behind the door test: each answer frame measured against the frontal face
/// (turn towards the person's left, non-similarity motion, parallax; README, "Liveness").
#[test]
fn the_answers_measured_against_the_frontal_face() {
    use facegate::vision::liveness::challenge::{self, Side, TURN};
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let orl = faces.join("att_faces");
    let photo = |s: &str, i: u32| orl_frame(&orl.join(format!("{s}/{i}.pgm")));
    let config = LivenessConfig {
        challenge: ChallengeKind::Turn,
        ..LivenessConfig::default()
    };
    let models = common::models()
        .clone()
        .with_liveness(&common::repo().join("models"), &config)
        .unwrap();
    let mut p = facegate::vision::Pipeline::new(&models, facegate::vision::VisionParams::default())
        .unwrap();
    let mut points = |img: &RgbImage| {
        let dets = p.detect(img).unwrap();
        let det = dets.first().expect("a face");
        p.landmarks(img, det).expect("landmark model").unwrap()
    };
    let front = photo("s1", 1);
    let base = points(&front);
    let mut rows: Vec<(String, challenge::TurnMeasure)> = Vec::new();
    let mut add = |name: String, img: &RgbImage, rows: &mut Vec<_>| {
        let m = challenge::measure(Side::Left, &base, &points(img)).unwrap();
        rows.push((name, m));
    };
    for i in [2, 5, 4, 6] {
        add(format!("s1/{i} (pose photo)"), &photo("s1", i), &mut rows);
    }
    for (dx, dy, z, r) in [
        (25.0, 5.0, 1.05, 0.08),
        (50.0, 10.0, 1.12, 0.15),
        (-30.0, 0.0, 0.9, -0.2),
    ] {
        add(
            format!("s1/1 moved in-plane ({dx}, {dy}) x{z} {r} rad"),
            &moved_in_plane(&front, dx, dy, z, r),
            &mut rows,
        );
    }
    for d in [15.0f32, 30.0, 40.0, -20.0, -40.0] {
        add(
            format!("s1/1 turned in the hand {d}°"),
            &turned_in_hand(&front, d.to_radians()),
            &mut rows,
        );
    }
    println!("| frame | turn (to the left) | moved | parallax | passes left | passes right |");
    println!("|---|---|---|---|---|---|");
    for (name, m) in &rows {
        let right = challenge::TurnMeasure {
            turn: -m.turn,
            ..*m
        };
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {} | {} |",
            m.turn,
            m.moved,
            m.parallax,
            TURN.passes(m),
            TURN.passes(&right)
        );
    }
    // The pose photos pass for their own side only; no picture passes either side.
    for (name, m) in &rows {
        let right = challenge::TurnMeasure {
            turn: -m.turn,
            ..*m
        };
        let (l, r) = (TURN.passes(m), TURN.passes(&right));
        if name.starts_with("s1/2") || name.starts_with("s1/5") {
            assert!(l && !r, "{name}: {m:?}");
        } else if name.starts_with("s1/4") || name.starts_with("s1/6") {
            assert!(r && !l, "{name}: {m:?}");
        } else {
            assert!(!l && !r, "{name}: {m:?}");
        }
        if name.contains("in-plane") {
            assert!(m.turn.abs() < TURN.min_turn / 2.0, "{name}: {m:?}");
        }
    }
}
