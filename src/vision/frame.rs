//! Every way a picture enters facegate becomes an [`RgbImage`] here: image files and uploads
//! (JPEG, PNG, PGM/PPM, BMP, with EXIF orientation applied), and the raw formats cameras give
//! (RGB24, YUYV 4:2:2, MJPEG, 8-bit grey).

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::VisionError;

/// Default ceiling on decoded pixels (40 MP): larger images are refused before decoding,
/// so a decompression bomb costs nothing.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Raw pixel formats a camera may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// YUYV 4:2:2 (Y0 U Y1 V per two pixels), BT.601 limited range.
    Yuyv,
    /// One JPEG per frame.
    Mjpeg,
    /// 8-bit luminance.
    Grey,
}

/// Largest image file read (256 MiB); anything bigger is refused unread.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Decode an image file, refusing anything over `max_pixels`.
pub fn read_image(path: &Path, max_pixels: u64) -> Result<RgbImage, VisionError> {
    let fail = |reason: String| VisionError::Image {
        what: path.display().to_string(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is {len} bytes, more than the limit of {MAX_FILE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    decode_image(&bytes, max_pixels).map_err(|e| e.naming(path))
}

/// Decode an encoded image held in memory (an upload, an MJPEG frame).
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::Image {
            what: "image".into(),
            reason: "empty input".into(),
        });
    }
    if bytes.starts_with(&[0xff, 0xd8]) && !has_jpeg_end(bytes) {
        // The decoder would fill the missing rows with grey and call it a success.
        return Err(VisionError::Image {
            what: "image".into(),
            reason: "truncated JPEG (no end-of-image marker)".into(),
        });
    }
    decode_reader(Cursor::new(bytes), max_pixels)
}

/// Whether a JPEG's end-of-image marker (FF D9) is present near its end (cameras may pad
/// a few bytes after it).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

fn decode_reader<R: BufRead + Seek>(reader: R, max_pixels: u64) -> Result<RgbImage, VisionError> {
    let bad = |reason: String| VisionError::Image {
        what: "image".into(),
        reason,
    };
    let reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    if reader.format().is_none() {
        return Err(bad(
            "not a supported image (JPEG, PNG, WebP, PGM/PPM or BMP expected)".into(),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(VisionError::ImageTooLarge {
            width: w,
            height: h,
            max_pixels,
        });
    }
    if w == 0 || h == 0 {
        return Err(bad(format!("image has no pixels ({w}x{h})")));
    }
    // The decoded size counts too, not only the pixels: a 16-bit RGBA PNG takes 8 bytes a
    // pixel, so one under the pixel limit can still decode to hundreds of MB. Refused from the
    // header, before anything is allocated; the limit is the size of the largest allowed image
    // in 8-bit RGB.
    let decoded = decoder.total_bytes();
    let max_bytes = max_pixels.saturating_mul(3);
    if decoded > max_bytes {
        return Err(VisionError::DecodedTooLarge {
            width: w,
            height: h,
            bytes: decoded,
            max_bytes,
        });
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img.into_rgb8())
}

/// Convert one raw camera frame to RGB.
pub fn to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
    max_pixels: u64,
) -> Result<RgbImage, VisionError> {
    let (w, h) = (width as usize, height as usize);
    let short = |need: usize| VisionError::Image {
        what: format!("{format:?} frame {width}x{height}"),
        reason: format!("{} bytes, need {need}", data.len()),
    };
    let img = match format {
        PixelFormat::Mjpeg => decode_image(data, max_pixels)?,
        PixelFormat::Rgb24 => {
            let need = w * h * 3;
            let buf = data.get(..need).ok_or_else(|| short(need))?;
            RgbImage::from_raw(width, height, buf.to_vec()).ok_or_else(|| short(need))?
        }
        PixelFormat::Grey => {
            let need = w * h;
            let buf = data.get(..need).ok_or_else(|| short(need))?;
            let mut out = Vec::with_capacity(need * 3);
            for &y in buf {
                out.extend_from_slice(&[y, y, y]);
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))?
        }
        PixelFormat::Yuyv => {
            if w % 2 != 0 {
                return Err(VisionError::Image {
                    what: format!("YUYV frame {width}x{height}"),
                    reason: "YUYV needs an even width".into(),
                });
            }
            let need = w * h * 2;
            let buf = data.get(..need).ok_or_else(|| short(need))?;
            let mut out = vec![0u8; w * h * 3];
            for (src, dst) in buf.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                let (u, v) = (src[1], src[3]);
                let (a, b) = dst.split_at_mut(3);
                yuv_to_rgb(src[0], u, v, a);
                yuv_to_rgb(src[2], u, v, b);
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))?
        }
    };
    Ok(img)
}

/// BT.601 limited-range YCbCr to RGB, integer arithmetic (16.16 fixed point).
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8, out: &mut [u8]) {
    let c = (i32::from(y) - 16).max(0) * 76284; // 1.164 * 65536
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 32768) >> 16).clamp(0, 255) as u8;
    out[0] = clamp(c + 104595 * e); // 1.596
    out[1] = clamp(c - 25690 * d - 53281 * e); // 0.392, 0.813
    out[2] = clamp(c + 132186 * d); // 2.017
}

impl VisionError {
    /// Attach a file name to an image error.
    fn naming(self, path: &Path) -> Self {
        match self {
            VisionError::Image { reason, .. } => VisionError::Image {
                what: path.display().to_string(),
                reason,
            },
            VisionError::ImageTooLarge {
                width,
                height,
                max_pixels,
            } => VisionError::Image {
                what: path.display().to_string(),
                reason: format!(
                    "{width}x{height} is {} pixels, more than the limit of {max_pixels}",
                    u64::from(width) * u64::from(height)
                ),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_grey_and_primaries() {
        // Mid grey: Y=126 (limited range), U=V=128 -> about 128 on every channel.
        let frame = [126u8, 128, 126, 128];
        let img = to_rgb(&frame, 2, 1, PixelFormat::Yuyv, DEFAULT_MAX_PIXELS).unwrap();
        for p in img.pixels() {
            for c in p.0 {
                assert!((127..=129).contains(&c), "{p:?}");
            }
        }
        // BT.601 red (Y=81, U=90, V=240) -> near (255, 0, 0).
        let red = [81u8, 90, 81, 240];
        let img = to_rgb(&red, 2, 1, PixelFormat::Yuyv, DEFAULT_MAX_PIXELS).unwrap();
        let p = img.get_pixel(0, 0).0;
        assert!(p[0] > 250 && p[1] < 5 && p[2] < 5, "{p:?}");
    }

    #[test]
    fn short_frames_are_refused() {
        assert!(to_rgb(&[0u8; 10], 4, 4, PixelFormat::Rgb24, DEFAULT_MAX_PIXELS).is_err());
        assert!(to_rgb(&[0u8; 10], 4, 4, PixelFormat::Yuyv, DEFAULT_MAX_PIXELS).is_err());
        assert!(to_rgb(&[0u8; 15], 4, 4, PixelFormat::Grey, DEFAULT_MAX_PIXELS).is_err());
    }

    #[test]
    fn grey_expands_to_rgb() {
        let img = to_rgb(
            &[0, 50, 100, 200],
            2,
            2,
            PixelFormat::Grey,
            DEFAULT_MAX_PIXELS,
        )
        .unwrap();
        assert_eq!(img.get_pixel(1, 1).0, [200, 200, 200]);
    }

    #[test]
    fn not_an_image_and_empty_are_clear_errors() {
        let e = must_fail(decode_image(
            b"hello world, not an image",
            DEFAULT_MAX_PIXELS,
        ));
        assert!(e.to_string().contains("not a supported image"), "{e}");
        let e = must_fail(decode_image(b"", DEFAULT_MAX_PIXELS));
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn huge_declared_size_is_refused_before_decoding() {
        // A PNG header claiming 20000x20000: refused from the header alone.
        let mut png = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut png);
        use image::ImageEncoder;
        enc.write_image(&[0u8; 3 * 4], 2, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        // Patch width and height in the IHDR chunk (bytes 16..24) and its CRC.
        png[16..20].copy_from_slice(&20000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = must_fail(decode_image(&png, DEFAULT_MAX_PIXELS));
        assert!(
            matches!(e, VisionError::ImageTooLarge { width: 20000, .. }),
            "{e}"
        );
    }

    /// The error of a call that must fail (without printing a whole decoded image if not).
    fn must_fail<T>(r: Result<T, VisionError>) -> VisionError {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
