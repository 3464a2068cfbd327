//! PNG rendering: a `DrawTarget` over an `image::GrayImage`, and [`PngDisplay`], a status
//! display that keeps every frame in memory and optionally writes it to a PNG file. Used for
//! development without a display and for the reference images of the tests.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use embedded_graphics::pixelcolor::{Gray8, GrayColor};
use embedded_graphics::prelude::*;
use image::{GrayImage, Luma};

use super::{Fit, LOGICAL_SIZE, Screen, draw_screen};
use crate::hw::{HwError, StatusDisplay};

/// An 8-bit grey image as an embedded-graphics target.
#[derive(Debug, Clone)]
pub struct GrayCanvas(pub GrayImage);

impl GrayCanvas {
    pub fn new(width: u32, height: u32) -> GrayCanvas {
        GrayCanvas(GrayImage::new(width, height))
    }
}

impl OriginDimensions for GrayCanvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for GrayCanvas {
    type Color = Gray8;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Gray8>>,
    {
        let (w, h) = self.0.dimensions();
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                && x < w
                && y < h
            {
                self.0.put_pixel(x, y, Luma([c.luma()]));
            }
        }
        Ok(())
    }
}

/// `screen` as a grey image, `scale` times 128x64: lit pixels white, the rest black.
pub fn render_gray(screen: &Screen, scale: u32) -> GrayImage {
    let scale = scale.max(1);
    let mut canvas = GrayCanvas::new(LOGICAL_SIZE.width * scale, LOGICAL_SIZE.height * scale);
    let mut fit = Fit::with_scale(&mut canvas, scale, Gray8::WHITE, Gray8::BLACK);
    match draw_screen(&mut fit, screen) {
        Ok(()) => {}
        Err(never) => match never {},
    }
    canvas.0
}

/// Write a PNG through a temporary file and a rename, so a reader never sees half a file.
pub fn write_png(image: &GrayImage, path: &Path) -> Result<(), HwError> {
    let err = |detail: String| HwError::Png {
        path: path.to_owned(),
        detail,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    image
        .save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// What a [`PngDisplay`] has shown, shared with whoever holds a handle (tests).
#[derive(Debug, Default)]
pub struct DisplayLog {
    /// Every screen shown, oldest first.
    pub shown: Vec<Screen>,
    /// The last frame, at the display's scale.
    pub frame: Option<GrayImage>,
}

/// A status display rendering to images: always kept in memory ([`PngDisplay::log`]), and
/// written to a PNG file on every change when it has a path.
#[derive(Debug)]
pub struct PngDisplay {
    path: Option<PathBuf>,
    scale: u32,
    log: Arc<Mutex<DisplayLog>>,
}

impl PngDisplay {
    pub fn new(path: Option<PathBuf>, scale: u32) -> PngDisplay {
        PngDisplay {
            path,
            scale: scale.max(1),
            log: Arc::default(),
        }
    }

    pub fn log(&self) -> Arc<Mutex<DisplayLog>> {
        self.log.clone()
    }
}

impl StatusDisplay for PngDisplay {
    fn show(&mut self, screen: &Screen) -> Result<(), HwError> {
        let frame = render_gray(screen, self.scale);
        if let Some(path) = &self.path {
            write_png(&frame, path)?;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.shown.push(screen.clone());
        log.frame = Some(frame);
        Ok(())
    }
}
