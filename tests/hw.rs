//! Status display screens against reference PNGs (tests/fixtures/display/*.png), compared
//! pixel for pixel, and the same screens on colour framebuffers of other sizes.
//!
//! After an intended change of the layout, regenerate the references with
//! `FACEGATE_BLESS=1 cargo test --test hw`, look at them, and commit them.

use std::path::PathBuf;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use facegate::hw::display::fbdev::{FbCanvas, FbFormat, draw_on_canvas};
use facegate::hw::display::png::{PngDisplay, render_gray};
use facegate::hw::{HwConfig, Screen, StatusDisplay};
use image::GrayImage;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/display")
}

fn cases() -> Vec<(&'static str, Screen)> {
    vec![
        ("idle", Screen::Idle),
        ("looking", Screen::Looking),
        (
            "granted",
            Screen::Granted {
                name: "Ada Lovelace".into(),
            },
        ),
        (
            "granted_long_name",
            Screen::Granted {
                name: "Maximilian Alexander von Hohenberg".into(),
            },
        ),
        (
            "granted_latin1",
            Screen::Granted {
                name: "Zoë Núñez-Gómez".into(),
            },
        ),
        (
            "denied",
            Screen::Denied {
                reason: "Face not known".into(),
            },
        ),
        (
            "denied_long_reason",
            Screen::Denied {
                reason: "Face not recognised: please look straight at the camera".into(),
            },
        ),
        ("offline", Screen::Offline),
        ("camera_lost", Screen::CameraLost),
    ]
}

fn lit(image: &GrayImage, x: u32, y: u32) -> bool {
    image.get_pixel(x, y).0[0] > 127
}

#[test]
fn every_screen_matches_its_reference_png() {
    let bless = std::env::var("FACEGATE_BLESS").is_ok_and(|v| v == "1");
    let dir = fixtures();
    let mut rendered = Vec::new();
    for (name, screen) in cases() {
        let image = render_gray(&screen, 1);
        assert_eq!(image.dimensions(), (128, 64));
        assert!(
            image.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255),
            "{name}: monochrome"
        );
        let path = dir.join(format!("{name}.png"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            image.save(&path).unwrap();
        } else {
            let reference = image::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (FACEGATE_BLESS=1 creates it)", path.display()))
                .to_luma8();
            assert_eq!(reference.dimensions(), image.dimensions(), "{name}");
            let diff: Vec<(u32, u32)> = image
                .enumerate_pixels()
                .filter(|(x, y, p)| reference.get_pixel(*x, *y) != *p)
                .map(|(x, y, _)| (x, y))
                .collect();
            assert!(
                diff.is_empty(),
                "{name}: {} pixels differ from {} (first at {:?}); if intended, \
                 regenerate with FACEGATE_BLESS=1 and look at the result",
                diff.len(),
                path.display(),
                diff[0]
            );
        }
        rendered.push((name, image));
    }
    // Every screen looks different, and each has an icon, a title and a detail line.
    for (i, (a, ia)) in rendered.iter().enumerate() {
        for (b, ib) in &rendered[i + 1..] {
            assert_ne!(ia, ib, "{a} and {b} look the same");
        }
        let any_lit = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            xs.clone().any(|x| ys.clone().any(|y| lit(ia, x, y)))
        };
        assert!(any_lit(4..28, 4..28), "{a}: icon");
        assert!(any_lit(34..128, 6..26), "{a}: title");
        assert!(any_lit(0..128, 35..49), "{a}: detail line");
    }
}

#[test]
fn long_text_ends_in_an_ellipsis_within_the_screen() {
    let image = render_gray(
        &Screen::Granted {
            name: "Maximilian Alexander von Hohenberg".into(),
        },
        1,
    );
    // Second line: "Alexander von Hoh" (17 cells of 7 px) plus the ellipsis cell, centred:
    // 18 * 7 = 126 px from x = 1. The ellipsis dots sit on the font baseline (y = 50 + 10 =
    // 60) at x = 1 + 17 * 7 + {0, 2, 4}.
    for dx in [0, 2, 4] {
        assert!(lit(&image, 1 + 17 * 7 + dx, 60), "dot at +{dx}");
    }
    for dx in [1, 3, 5] {
        assert!(!lit(&image, 1 + 17 * 7 + dx, 60), "gap at +{dx}");
    }
    // The short name is centred: "Ada Lovelace" is 12 cells = 84 px, from x = 22.
    let short = render_gray(
        &Screen::Granted {
            name: "Ada Lovelace".into(),
        },
        1,
    );
    let columns: Vec<u32> = (0..128)
        .filter(|x| (35..49).any(|y| lit(&short, *x, y)))
        .collect();
    assert!(*columns.first().unwrap() >= 22 && *columns.last().unwrap() < 22 + 84);
}

/// Colour framebuffers of other sizes show the same layout, scaled by a whole number and
/// centred, in the screen's accent colour on black.
#[test]
fn framebuffers_show_the_reference_scaled_and_centred() {
    for (format, scale, left, top) in [
        (FbFormat::rgb565(320, 240), 2, 32, 56),
        (FbFormat::xrgb8888(800, 480), 6, 16, 48),
        (FbFormat::rgb565(128, 64), 1, 0, 0),
    ] {
        for (name, screen) in cases() {
            let reference = render_gray(&screen, 1);
            let mut canvas = FbCanvas::new(format).unwrap();
            draw_on_canvas(&mut canvas, &screen);
            let on = format.pack(screen.accent());
            let off = format.pack(Rgb888::BLACK);
            assert_ne!(on, off);
            for y in 0..format.height {
                for x in 0..format.width {
                    let inside =
                        x >= left && y >= top && x < left + 128 * scale && y < top + 64 * scale;
                    let expected =
                        if inside && lit(&reference, (x - left) / scale, (y - top) / scale) {
                            on
                        } else {
                            off
                        };
                    assert_eq!(
                        canvas.pixel(x, y),
                        Some(expected),
                        "{name} on {}x{}@{}bpp at ({x}, {y})",
                        format.width,
                        format.height,
                        format.bits_per_pixel
                    );
                }
            }
        }
    }
}

#[test]
fn png_display_writes_the_reference_frame_to_a_file() {
    let path = std::env::temp_dir().join(format!("facegate-hw-test-{}.png", std::process::id()));
    let mut display = PngDisplay::new(Some(path.clone()), 1);
    let screen = Screen::Denied {
        reason: "Face not known".into(),
    };
    display.show(&screen).unwrap();
    let written = image::open(&path).unwrap().to_luma8();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, render_gray(&screen, 1));
    let log = display.log();
    let log = log.lock().unwrap();
    assert_eq!(log.shown, vec![screen]);
    assert_eq!(log.frame.as_ref(), Some(&written));
}

#[test]
fn memory_hardware_with_png_display_writes_png_path() {
    let path = std::env::temp_dir().join(format!("facegate-hw-mem-{}.png", std::process::id()));
    let text = format!(
        "gpio_backend = \"memory\"\ndisplay = \"png\"\npng_path = {:?}\n",
        path.display().to_string()
    );
    let cfg: HwConfig = toml::from_str(&text).unwrap();
    let mut hw = facegate::hw::open_from_config(&cfg).unwrap();
    hw.display.show(&Screen::Offline).unwrap();
    let written = image::open(&path).unwrap().to_luma8();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, render_gray(&Screen::Offline, 1));
    assert!(!hw.relay.is_unlocked());
}
