//! Linux framebuffer (`/dev/fb0`: HDMI, an SPI LCD with fbtft, vfb). The screen is laid out
//! at 128x64, scaled by the largest whole number that fits and centred ([`Fit`]), drawn in the
//! screen's accent colour on black into a memory copy ([`FbCanvas`]) and written to the device
//! in one `pwrite` per frame.
//!
//! Pixel formats come from the kernel's variable screen info (bits per pixel and the offset
//! and length of each colour channel); 16, 24 and 32 bits per pixel are supported.

use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

use super::{Fit, Screen, draw_screen};
use crate::hw::{HwError, StatusDisplay};

/// Where one colour channel sits in a pixel value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

/// The geometry and pixel layout of a framebuffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FbFormat {
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (at least width × bytes per pixel).
    pub line_length: u32,
    pub bits_per_pixel: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

impl FbFormat {
    /// RGB565, the usual 16-bit format.
    pub fn rgb565(width: u32, height: u32) -> FbFormat {
        FbFormat {
            width,
            height,
            line_length: width * 2,
            bits_per_pixel: 16,
            red: Channel {
                offset: 11,
                length: 5,
            },
            green: Channel {
                offset: 5,
                length: 6,
            },
            blue: Channel {
                offset: 0,
                length: 5,
            },
        }
    }

    /// XRGB8888, the usual 32-bit format (bytes B, G, R, X in memory).
    pub fn xrgb8888(width: u32, height: u32) -> FbFormat {
        FbFormat {
            width,
            height,
            line_length: width * 4,
            bits_per_pixel: 32,
            red: Channel {
                offset: 16,
                length: 8,
            },
            green: Channel {
                offset: 8,
                length: 8,
            },
            blue: Channel {
                offset: 0,
                length: 8,
            },
        }
    }

    pub fn bytes_per_pixel(&self) -> usize {
        (self.bits_per_pixel / 8) as usize
    }

    /// Whether this layout can be drawn on.
    pub fn check(&self) -> Result<(), String> {
        if ![16, 24, 32].contains(&self.bits_per_pixel) {
            return Err(format!(
                "{} bits per pixel is not supported (16, 24 or 32; try `fbset -depth 32`)",
                self.bits_per_pixel
            ));
        }
        for (name, c) in [
            ("red", self.red),
            ("green", self.green),
            ("blue", self.blue),
        ] {
            if c.length == 0 || c.length > 16 || c.offset + c.length > self.bits_per_pixel {
                return Err(format!(
                    "{name} channel (offset {}, length {}) does not fit a {}-bit pixel",
                    c.offset, c.length, self.bits_per_pixel
                ));
            }
        }
        if self.width == 0 || self.height == 0 {
            return Err(format!("empty framebuffer {}x{}", self.width, self.height));
        }
        if (self.line_length as usize) < self.width as usize * self.bytes_per_pixel() {
            return Err(format!(
                "line length {} is shorter than {} pixels",
                self.line_length, self.width
            ));
        }
        Ok(())
    }

    /// The pixel value of `color`: each 8-bit channel reduced (or widened) to its length and
    /// shifted to its offset.
    pub fn pack(&self, color: Rgb888) -> u32 {
        let channel = |v: u8, c: Channel| {
            let v = u32::from(v);
            let v = if c.length <= 8 {
                v >> (8 - c.length)
            } else {
                v << (c.length - 8)
            };
            v << c.offset
        };
        channel(color.r(), self.red)
            | channel(color.g(), self.green)
            | channel(color.b(), self.blue)
    }

    /// Bytes of one pixel in memory (little-endian, as on ARM and x86).
    pub fn pack_bytes(&self, color: Rgb888) -> Vec<u8> {
        self.pack(color).to_le_bytes()[..self.bytes_per_pixel()].to_vec()
    }
}

/// A memory copy of a framebuffer, drawn on with `Rgb888`.
#[derive(Debug, Clone)]
pub struct FbCanvas {
    format: FbFormat,
    data: Vec<u8>,
}

impl FbCanvas {
    pub fn new(format: FbFormat) -> Result<FbCanvas, String> {
        format.check()?;
        let len = format.line_length as usize * format.height as usize;
        Ok(FbCanvas {
            format,
            data: vec![0; len],
        })
    }

    pub fn format(&self) -> &FbFormat {
        &self.format
    }

    /// The bytes as the device holds them: `height` rows of `line_length` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The raw pixel value at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        let bpp = self.format.bytes_per_pixel();
        if x >= self.format.width || y >= self.format.height {
            return None;
        }
        let at = y as usize * self.format.line_length as usize + x as usize * bpp;
        let mut bytes = [0u8; 4];
        bytes[..bpp].copy_from_slice(&self.data[at..at + bpp]);
        Some(u32::from_le_bytes(bytes))
    }

    fn fill_row(&mut self, y: u32, x0: u32, x1: u32, bytes: &[u8]) {
        let bpp = bytes.len();
        let row = y as usize * self.format.line_length as usize;
        let span = &mut self.data[row + x0 as usize * bpp..row + x1 as usize * bpp];
        for px in span.chunks_exact_mut(bpp) {
            px.copy_from_slice(bytes);
        }
    }
}

impl OriginDimensions for FbCanvas {
    fn size(&self) -> Size {
        Size::new(self.format.width, self.format.height)
    }
}

impl DrawTarget for FbCanvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                && x < self.format.width
                && y < self.format.height
            {
                let bytes = self.format.pack_bytes(c);
                self.fill_row(y, x, x + 1, &bytes);
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), Infallible> {
        let area = area.intersection(&self.bounding_box());
        let Some(bottom_right) = area.bottom_right() else {
            return Ok(());
        };
        let bytes = self.format.pack_bytes(color);
        // Both corners are inside the canvas after the intersection, so not negative.
        let (x0, y0) = (area.top_left.x as u32, area.top_left.y as u32);
        let (x1, y1) = (bottom_right.x as u32 + 1, bottom_right.y as u32 + 1);
        for y in y0..y1 {
            self.fill_row(y, x0, x1, &bytes);
        }
        Ok(())
    }
}

/// Draw `screen` on `canvas`: accent colour on black, scaled and centred.
pub fn draw_on_canvas(canvas: &mut FbCanvas, screen: &Screen) {
    let mut fit = Fit::new(canvas, screen.accent(), Rgb888::BLACK);
    match draw_screen(&mut fit, screen) {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

// The kernel's structures from <linux/fb.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

#[repr(C)]
#[derive(Debug, Default)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

#[repr(C)]
#[derive(Debug, Default)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    kind: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

const FBIOGET_VSCREENINFO: u32 = 0x4600;
const FBIOGET_FSCREENINFO: u32 = 0x4602;

/// A Linux framebuffer device.
#[derive(Debug)]
pub struct LinuxFramebuffer {
    file: File,
    path: PathBuf,
    canvas: FbCanvas,
    /// Byte offset of the visible area (panning).
    offset: u64,
}

impl LinuxFramebuffer {
    pub fn open(path: &Path) -> Result<LinuxFramebuffer, HwError> {
        let err = |detail: String| HwError::Framebuffer {
            path: path.to_owned(),
            detail,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        let mut var = FbVarScreeninfo::default();
        let mut fix = FbFixScreeninfo::default();
        // SAFETY: both requests fill a caller-owned structure with the layout declared above
        // (from <linux/fb.h>); the pointers are valid for the duration of the calls.
        let (rv, rf) = unsafe {
            (
                libc::ioctl(file.as_raw_fd(), FBIOGET_VSCREENINFO as _, &mut var),
                libc::ioctl(file.as_raw_fd(), FBIOGET_FSCREENINFO as _, &mut fix),
            )
        };
        if rv != 0 || rf != 0 {
            return Err(err(format!(
                "not a framebuffer (screen info ioctl failed: {})",
                std::io::Error::last_os_error()
            )));
        }
        let channel = |b: FbBitfield| Channel {
            offset: b.offset,
            length: b.length,
        };
        let format = FbFormat {
            width: var.xres,
            height: var.yres,
            line_length: fix.line_length,
            bits_per_pixel: var.bits_per_pixel,
            red: channel(var.red),
            green: channel(var.green),
            blue: channel(var.blue),
        };
        let canvas = FbCanvas::new(format).map_err(err)?;
        let offset = u64::from(var.yoffset) * u64::from(fix.line_length)
            + u64::from(var.xoffset) * (u64::from(var.bits_per_pixel) / 8);
        let id_len = fix.id.iter().position(|b| *b == 0).unwrap_or(fix.id.len());
        tracing::info!(
            path = %path.display(),
            id = %String::from_utf8_lossy(&fix.id[..id_len]),
            width = format.width,
            height = format.height,
            bpp = format.bits_per_pixel,
            "framebuffer opened"
        );
        Ok(LinuxFramebuffer {
            file,
            path: path.to_owned(),
            canvas,
            offset,
        })
    }

    pub fn format(&self) -> &FbFormat {
        self.canvas.format()
    }

    /// Write the memory copy to the device.
    pub fn flush(&mut self) -> Result<(), HwError> {
        self.file
            .write_all_at(self.canvas.data(), self.offset)
            .map_err(|e| HwError::Framebuffer {
                path: self.path.clone(),
                detail: format!("write failed: {e}"),
            })
    }
}

impl StatusDisplay for LinuxFramebuffer {
    fn show(&mut self, screen: &Screen) -> Result<(), HwError> {
        draw_on_canvas(&mut self.canvas, screen);
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_rgb565_and_xrgb8888() {
        let f16 = FbFormat::rgb565(4, 2);
        assert_eq!(f16.pack(Rgb888::new(255, 255, 255)), 0xFFFF);
        assert_eq!(f16.pack(Rgb888::new(255, 0, 0)), 0xF800);
        assert_eq!(f16.pack(Rgb888::new(0, 255, 0)), 0x07E0);
        assert_eq!(f16.pack(Rgb888::new(0, 0, 255)), 0x001F);
        // 0x30 >> 3 = 6, 0xE0 >> 2 = 56, 0x60 >> 3 = 12.
        assert_eq!(
            f16.pack(Rgb888::new(0x30, 0xE0, 0x60)),
            (6 << 11) | (56 << 5) | 12
        );
        assert_eq!(f16.pack_bytes(Rgb888::new(255, 0, 0)), vec![0x00, 0xF8]);

        let f32 = FbFormat::xrgb8888(4, 2);
        assert_eq!(f32.pack(Rgb888::new(0x12, 0x34, 0x56)), 0x0012_3456);
        assert_eq!(
            f32.pack_bytes(Rgb888::new(0x12, 0x34, 0x56)),
            vec![0x56, 0x34, 0x12, 0x00]
        );
        // BGR 24-bit: red in the low byte.
        let bgr24 = FbFormat {
            bits_per_pixel: 24,
            line_length: 12,
            red: Channel {
                offset: 0,
                length: 8,
            },
            blue: Channel {
                offset: 16,
                length: 8,
            },
            ..f32
        };
        assert_eq!(
            bgr24.pack_bytes(Rgb888::new(0x12, 0x34, 0x56)),
            vec![0x12, 0x34, 0x56]
        );
    }

    #[test]
    fn canvas_respects_line_length_and_clips() {
        // 3 pixels of 16 bits per row, rows padded to 8 bytes.
        let format = FbFormat {
            line_length: 8,
            ..FbFormat::rgb565(3, 2)
        };
        let mut canvas = FbCanvas::new(format).unwrap();
        canvas
            .draw_iter([
                Pixel(Point::new(2, 1), Rgb888::new(255, 0, 0)),
                Pixel(Point::new(3, 1), Rgb888::WHITE), // outside
                Pixel(Point::new(-1, 0), Rgb888::WHITE), // outside
            ])
            .unwrap();
        canvas
            .fill_solid(
                &Rectangle::new(Point::new(-5, 0), Size::new(6, 1)),
                Rgb888::new(0, 0, 255),
            )
            .unwrap();
        assert_eq!(
            canvas.data(),
            &[
                0x1F, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0, //
                0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0, 0,
            ]
        );
        assert_eq!(canvas.pixel(2, 1), Some(0xF800));
        assert_eq!(canvas.pixel(3, 1), None);
    }

    #[test]
    fn unsupported_formats_are_refused_with_the_reason() {
        let e = FbCanvas::new(FbFormat {
            bits_per_pixel: 8,
            ..FbFormat::rgb565(4, 4)
        })
        .unwrap_err();
        assert!(e.contains("8 bits per pixel"), "{e}");
        let e = FbCanvas::new(FbFormat {
            line_length: 4,
            ..FbFormat::rgb565(4, 4)
        })
        .unwrap_err();
        assert!(e.contains("line length"), "{e}");
    }

    #[test]
    fn opening_something_that_is_not_a_framebuffer_fails_clearly() {
        let e = LinuxFramebuffer::open(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("/dev/null"), "{e}");
        let e = LinuxFramebuffer::open(Path::new("/nonexistent/fb9")).unwrap_err();
        assert!(e.to_string().contains("fb9"), "{e}");
    }
}
