//! ROC plots as PNG, drawn with embedded-graphics (its built-in bitmap fonts need no font
//! files) onto an image buffer.

use std::convert::Infallible;
use std::path::Path;

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_8X13};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Text};
use image::RgbImage;

/// An [`RgbImage`] that embedded-graphics can draw on.
pub struct Canvas(pub RgbImage);

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        let (w, h) = self.0.dimensions();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < w && (p.y as u32) < h {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

const W: i32 = 720;
const H: i32 = 520;
const LEFT: i32 = 70;
const RIGHT: i32 = 24;
const TOP: i32 = 44;
const BOTTOM: i32 = 64;
const COLOURS: [Rgb888; 8] = [
    Rgb888::new(31, 119, 180),
    Rgb888::new(214, 39, 40),
    Rgb888::new(44, 160, 44),
    Rgb888::new(148, 103, 189),
    Rgb888::new(255, 127, 14),
    Rgb888::new(23, 190, 207),
    Rgb888::new(0, 0, 0),
    Rgb888::new(227, 119, 194),
];

/// One curve: a label and `(FAR, TAR)` points.
pub struct Curve<'a> {
    pub label: String,
    pub points: &'a [(f64, f64)],
}

/// Draw ROC curves (FAR on a log axis from 1e-4 to 1, TAR on a linear axis) and save as PNG.
pub fn roc_png(path: &Path, title: &str, curves: &[Curve]) -> Result<(), image::ImageError> {
    let mut c = Canvas(RgbImage::from_pixel(
        W as u32,
        H as u32,
        image::Rgb([255, 255, 255]),
    ));
    let (x_lo, x_hi) = (-4.0f64, 0.0f64);
    // TAR axis from the lowest TAR shown at FAR >= 1e-4, rounded down to 0.05.
    let lowest = curves
        .iter()
        .flat_map(|cv| cv.points.iter())
        .filter(|p| p.0 >= 1e-4)
        .map(|p| p.1)
        .fold(1.0f64, f64::min);
    let y_lo = ((lowest - 0.01) * 20.0).floor().clamp(0.0, 19.0) / 20.0;
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let px =
        |far: f64| x0 as f64 + (far.max(1e-4).log10() - x_lo) / (x_hi - x_lo) * (x1 - x0) as f64;
    let py = |tar: f64| y1 as f64 - (tar - y_lo) / (1.0 - y_lo) * (y1 - y0) as f64;

    let grid = PrimitiveStyle::with_stroke(Rgb888::new(225, 225, 225), 1);
    let axis = PrimitiveStyle::with_stroke(Rgb888::BLACK, 1);
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let big = MonoTextStyle::new(&FONT_8X13, Rgb888::BLACK);

    for decade in -4..=0 {
        let x = px(10f64.powi(decade)) as i32;
        let _ = Line::new(Point::new(x, y0), Point::new(x, y1))
            .into_styled(grid)
            .draw(&mut c);
        let label = if decade == 0 {
            "1".to_string()
        } else {
            format!("1e{decade}")
        };
        let _ = Text::with_alignment(&label, Point::new(x, y1 + 14), small, Alignment::Center)
            .draw(&mut c);
    }
    // Grid every 0.01 on a narrow TAR range, every 0.05 otherwise.
    let step = if 1.0 - y_lo <= 0.1 { 0.01 } else { 0.05 };
    let steps = ((1.0 - y_lo) / step).round() as i32;
    for k in 0..=steps {
        let tar = y_lo + f64::from(k) * step;
        let y = py(tar) as i32;
        let _ = Line::new(Point::new(x0, y), Point::new(x1, y))
            .into_styled(grid)
            .draw(&mut c);
        let _ = Text::with_alignment(
            &format!("{tar:.2}"),
            Point::new(x0 - 6, y + 3),
            small,
            Alignment::Right,
        )
        .draw(&mut c);
    }
    let _ = Rectangle::with_corners(Point::new(x0, y0), Point::new(x1, y1))
        .into_styled(axis)
        .draw(&mut c);
    let _ = Text::with_alignment(title, Point::new(W / 2, 24), big, Alignment::Center).draw(&mut c);
    let _ = Text::with_alignment(
        "false accept rate (FAR, log scale)",
        Point::new((x0 + x1) / 2, H - 30),
        big,
        Alignment::Center,
    )
    .draw(&mut c);
    let _ = Text::new("TAR", Point::new(8, y0 - 8), big).draw(&mut c);

    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = PrimitiveStyle::with_stroke(colour, 2);
        let pts: Vec<Point> = curve
            .points
            .iter()
            .filter(|p| p.0 >= 1e-4 || p.1 >= y_lo)
            .map(|&(far, tar)| Point::new(px(far) as i32, py(tar.max(y_lo)) as i32))
            .collect();
        // Step shape: a ROC from finite samples is a staircase.
        for w in pts.windows(2) {
            let corner = Point::new(w[1].x, w[0].y);
            let _ = Line::new(w[0], corner).into_styled(style).draw(&mut c);
            let _ = Line::new(corner, w[1]).into_styled(style).draw(&mut c);
        }
        let ly = y1 - 16 - 16 * (curves.len() as i32 - 1 - i as i32);
        let _ = Line::new(Point::new(x1 - 230, ly), Point::new(x1 - 205, ly))
            .into_styled(style)
            .draw(&mut c);
        let _ = Text::new(&curve.label, Point::new(x1 - 198, ly + 4), small).draw(&mut c);
    }
    c.0.save(path)
}

/// The axis names of a DET plot: the false-accept kind of error on x, the false-reject kind on y.
pub struct DetAxes<'a> {
    pub x: &'a str,
    pub y: &'a str,
}

/// Open-set identification: FPIR (x) and FNIR (y).
pub const OPEN_SET_AXES: DetAxes<'static> = DetAxes {
    x: "false positive identification rate (FPIR, log)",
    y: "FNIR (log)",
};

/// Presentation-attack detection (ISO/IEC 30107-3): BPCER (x) and APCER (y).
pub const LIVENESS_AXES: DetAxes<'static> = DetAxes {
    x: "BPCER: live visits refused (log scale)",
    y: "APCER",
};

/// Draw DET curves, both axes on log scales (x 1e-4..1, y 1e-3..1; rates of 0 are drawn at the
/// axis minimum), and save as PNG. `points` of each curve are `(x, y)` as `axes` names them.
pub fn det_png(
    path: &Path,
    title: &str,
    axes: &DetAxes,
    curves: &[Curve],
) -> Result<(), image::ImageError> {
    let mut c = Canvas(RgbImage::from_pixel(
        W as u32,
        H as u32,
        image::Rgb([255, 255, 255]),
    ));
    let (x_lo, x_hi, y_lo, y_hi) = (-4.0f64, 0.0f64, -3.0f64, 0.0f64);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let px = |v: f64| {
        x0 as f64
            + (v.max(1e-4).log10().clamp(x_lo, x_hi) - x_lo) / (x_hi - x_lo) * (x1 - x0) as f64
    };
    let py = |v: f64| {
        y1 as f64
            - (v.max(1e-3).log10().clamp(y_lo, y_hi) - y_lo) / (y_hi - y_lo) * (y1 - y0) as f64
    };
    let grid = PrimitiveStyle::with_stroke(Rgb888::new(225, 225, 225), 1);
    let axis = PrimitiveStyle::with_stroke(Rgb888::BLACK, 1);
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let big = MonoTextStyle::new(&FONT_8X13, Rgb888::BLACK);
    let label = |d: i32| {
        if d == 0 {
            "1".to_string()
        } else {
            format!("1e{d}")
        }
    };
    for d in -4..=0 {
        let x = px(10f64.powi(d)) as i32;
        let _ = Line::new(Point::new(x, y0), Point::new(x, y1))
            .into_styled(grid)
            .draw(&mut c);
        let _ = Text::with_alignment(&label(d), Point::new(x, y1 + 14), small, Alignment::Center)
            .draw(&mut c);
    }
    for d in -3..=0 {
        let y = py(10f64.powi(d)) as i32;
        let _ = Line::new(Point::new(x0, y), Point::new(x1, y))
            .into_styled(grid)
            .draw(&mut c);
        let _ = Text::with_alignment(
            &label(d),
            Point::new(x0 - 6, y + 3),
            small,
            Alignment::Right,
        )
        .draw(&mut c);
    }
    let _ = Rectangle::with_corners(Point::new(x0, y0), Point::new(x1, y1))
        .into_styled(axis)
        .draw(&mut c);
    let _ = Text::with_alignment(title, Point::new(W / 2, 24), big, Alignment::Center).draw(&mut c);
    let _ = Text::with_alignment(
        axes.x,
        Point::new((x0 + x1) / 2, H - 30),
        big,
        Alignment::Center,
    )
    .draw(&mut c);
    let _ = Text::new(axes.y, Point::new(8, y0 - 8), big).draw(&mut c);
    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = PrimitiveStyle::with_stroke(colour, 2);
        let mut pts: Vec<(f64, f64)> = curve.points.to_vec();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let pts: Vec<Point> = pts
            .iter()
            .map(|&(x, y)| Point::new(px(x) as i32, py(y) as i32))
            .collect();
        for w in pts.windows(2) {
            let corner = Point::new(w[1].x, w[0].y);
            let _ = Line::new(w[0], corner).into_styled(style).draw(&mut c);
            let _ = Line::new(corner, w[1]).into_styled(style).draw(&mut c);
        }
        let ly = y0 + 14 + 16 * i as i32;
        let _ = Line::new(Point::new(x1 - 330, ly), Point::new(x1 - 305, ly))
            .into_styled(style)
            .draw(&mut c);
        let _ = Text::new(&curve.label, Point::new(x1 - 298, ly + 4), small).draw(&mut c);
    }
    c.0.save(path)
}
