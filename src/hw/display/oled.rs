//! SSD1306 128x64 OLED on I2C, through the `ssd1306` crate (buffered graphics mode; the I2C
//! transport is `display-interface-i2c`, re-exported by `ssd1306`).
//!
//! Every [`StatusDisplay::show`] redraws the whole 1 KiB frame: 2 command writes (column and
//! page range) and 64 data writes of 16 bytes, about 25 ms at 400 kHz.

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_hal::i2c::I2c;
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::{Screen, draw_screen};
use crate::hw::{HwError, StatusDisplay};

type Driver<I> =
    Ssd1306<I2CInterface<I>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

pub struct Ssd1306Display<I: I2c> {
    driver: Driver<I>,
}

impl<I: I2c> std::fmt::Debug for Ssd1306Display<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ssd1306Display")
    }
}

fn display_error<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> HwError + '_ {
    move |e| HwError::Display(format!("SSD1306 {what}: {e:?}"))
}

impl<I: I2c> Ssd1306Display<I> {
    /// Initialise the controller at `address` (0x3C or 0x3D); the screen is blank until the
    /// first [`StatusDisplay::show`].
    pub fn new(i2c: I, address: u8) -> Result<Self, HwError> {
        let interface = I2CDisplayInterface::new_custom_address(i2c, address);
        let mut driver = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        driver.init().map_err(display_error("init"))?;
        Ok(Ssd1306Display { driver })
    }

    /// Clear the frame buffer (in memory only).
    pub fn clear_buffer(&mut self) {
        self.driver.clear_buffer();
    }

    /// Send the changed part of the frame buffer.
    pub fn flush(&mut self) -> Result<(), HwError> {
        self.driver.flush().map_err(display_error("flush"))
    }

    /// Take the I2C bus back.
    pub fn release(self) -> I {
        self.driver.release().release()
    }
}

impl<I: I2c> OriginDimensions for Ssd1306Display<I> {
    fn size(&self) -> Size {
        self.driver.size()
    }
}

impl<I: I2c> DrawTarget for Ssd1306Display<I> {
    type Color = BinaryColor;
    type Error = HwError;

    fn draw_iter<It>(&mut self, pixels: It) -> Result<(), HwError>
    where
        It: IntoIterator<Item = Pixel<BinaryColor>>,
    {
        self.driver.draw_iter(pixels).map_err(display_error("draw"))
    }

    fn fill_solid(&mut self, area: &Rectangle, color: BinaryColor) -> Result<(), HwError> {
        self.driver
            .fill_solid(area, color)
            .map_err(display_error("draw"))
    }
}

impl<I: I2c + Send> StatusDisplay for Ssd1306Display<I> {
    fn show(&mut self, screen: &Screen) -> Result<(), HwError> {
        // Clearing marks the whole frame dirty, so the flush sends all of it: a display that
        // missed a frame (brown-out, loose cable) is repaired by the next screen.
        self.driver.clear_buffer();
        draw_screen(self, screen)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTx};

    use super::*;
    use crate::hw::display::png::render_gray;

    const ADDR: u8 = 0x3C;

    /// The initialisation ssd1306 0.10 sends for a 128x64 panel in buffered graphics mode, one
    /// I2C write per command, each prefixed with the control byte 0x00 (Co = 0, D/C# = 0:
    /// commands follow). Command names from the SSD1306 datasheet, section 9 (command table)
    /// and its "software initialization" flow chart.
    fn init_writes() -> Vec<Vec<u8>> {
        [
            &[0xAE][..],   // display off
            &[0xD5, 0x80], // clock: oscillator frequency 8, divide ratio 1
            &[0xA8, 0x3F], // multiplex ratio 64
            &[0xD3, 0x00], // display offset 0
            &[0x40],       // display start line 0
            &[0x8D, 0x14], // charge pump on
            &[0x20, 0x00], // memory addressing: horizontal
            &[0xDA, 0x12], // COM pins: alternative configuration, no left/right remap
            &[0xA1],       // segment remap: column 127 is SEG0 (rotation 0)
            &[0xC8],       // COM scan direction: remapped (rotation 0)
            &[0xD9, 0x21], // pre-charge: phase 1 = 1 clock, phase 2 = 2 clocks
            &[0x81, 0x5F], // contrast 0x5F ("normal" brightness)
            &[0xDB, 0x40], // VCOMH deselect level: 0x40 (crate's "auto")
            &[0xA4],       // display follows RAM content
            &[0xA6],       // normal, not inverted
            &[0x2E],       // deactivate scroll
            &[0xAF],       // display on
        ]
        .iter()
        .map(|cmd| {
            let mut w = vec![0x00];
            w.extend_from_slice(cmd);
            w
        })
        .collect()
    }

    /// A full-frame flush: column range 0..127, page range 0..7, then the 1024 frame bytes
    /// as data writes (control byte 0x40: Co = 0, D/C# = 1) of 16 bytes each.
    fn frame_writes(frame: &[u8; 1024]) -> Vec<Vec<u8>> {
        let mut writes = vec![vec![0x00, 0x21, 0x00, 0x7F], vec![0x00, 0x22, 0x00, 0x07]];
        for chunk in frame.chunks(16) {
            let mut w = vec![0x40];
            w.extend_from_slice(chunk);
            writes.push(w);
        }
        writes
    }

    fn expect(writes: &[Vec<u8>]) -> Vec<I2cTx> {
        writes
            .iter()
            .map(|w| I2cTx::write(ADDR, w.clone()))
            .collect()
    }

    /// Pack a 128x64 image the way the SSD1306 stores it in horizontal addressing mode: 8
    /// pages of 8 rows; byte `page * 128 + x` holds rows `page*8 .. page*8+7` of column `x`,
    /// the top row in bit 0.
    fn pack_pages(lit: impl Fn(u32, u32) -> bool) -> [u8; 1024] {
        let mut frame = [0u8; 1024];
        for y in 0..64 {
            for x in 0..128 {
                if lit(x, y) {
                    frame[(y / 8 * 128 + x) as usize] |= 1 << (y % 8);
                }
            }
        }
        frame
    }

    #[test]
    fn init_then_small_drawing_sends_exact_bytes() {
        // A 3x4 block at x 2..4, y 6..9 straddles pages 0 and 1:
        // page 0 bytes 2..4 hold rows 6 and 7 -> 0b1100_0000; page 1 bytes 130..132 hold
        // rows 8 and 9 -> 0b0000_0011.
        let mut frame = [0u8; 1024];
        frame[2..5].fill(0xC0);
        frame[130..133].fill(0x03);
        assert_eq!(
            frame,
            pack_pages(|x, y| (2..5).contains(&x) && (6..10).contains(&y))
        );
        let mut writes = init_writes();
        writes.extend(frame_writes(&frame));
        // A second drawing changes one pixel (127, 63): only the dirty area goes out:
        // columns 127..127, pages 7..7 (end = (63 | 7) - 1 = 62 -> page 7), one data byte.
        writes.push(vec![0x00, 0x21, 0x7F, 0x7F]);
        writes.push(vec![0x00, 0x22, 0x07, 0x07]);
        writes.push(vec![0x40, 0x80]);
        assert_eq!(writes.len(), 17 + 2 + 64 + 3);

        let mut i2c = I2cMock::new(&expect(&writes));
        let mut display = Ssd1306Display::new(i2c.clone(), ADDR).unwrap();
        Rectangle::new(Point::new(2, 6), Size::new(3, 4))
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
            .draw(&mut display)
            .unwrap();
        display.flush().unwrap();
        Pixel(Point::new(127, 63), BinaryColor::On)
            .draw(&mut display)
            .unwrap();
        display.flush().unwrap();
        i2c.done();
    }

    #[test]
    fn each_screen_sends_the_reference_image_bytes() {
        for screen in [
            Screen::Idle,
            Screen::Granted {
                name: "Ada Lovelace".into(),
            },
        ] {
            let image = render_gray(&screen, 1);
            let frame = pack_pages(|x, y| image.get_pixel(x, y).0[0] > 127);
            assert!(frame.iter().any(|b| *b != 0), "screen is not blank");
            let mut writes = init_writes();
            writes.extend(frame_writes(&frame));
            let mut i2c = I2cMock::new(&expect(&writes));
            let mut display = Ssd1306Display::new(i2c.clone(), ADDR).unwrap();
            display.show(&screen).unwrap();
            let _bus = display.release();
            i2c.done();
        }
    }

    #[test]
    fn bus_error_is_reported_with_context() {
        use embedded_hal::i2c::ErrorKind;
        let tx = [I2cTx::write(ADDR, vec![0x00, 0xAE]).with_error(ErrorKind::Other)];
        let mut i2c = I2cMock::new(&tx);
        let e = Ssd1306Display::new(i2c.clone(), ADDR).unwrap_err();
        assert!(e.to_string().contains("SSD1306 init"), "{e}");
        i2c.done();
    }
}
