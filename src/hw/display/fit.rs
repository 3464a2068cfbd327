//! [`Fit`]: draw the 128x64 monochrome layout on any target, at a whole-number scale, centred,
//! with `BinaryColor` mapped to two colours of the target (Rgb565, Rgb888, Gray8, ...).

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

/// The size every screen is laid out for.
pub const LOGICAL_SIZE: Size = Size::new(128, 64);

pub struct Fit<'a, T: DrawTarget> {
    target: &'a mut T,
    scale: u32,
    offset: Point,
    on: T::Color,
    off: T::Color,
}

impl<'a, T: DrawTarget> Fit<'a, T> {
    /// The largest whole scale that fits the target (at least 1), centred.
    pub fn new(target: &'a mut T, on: T::Color, off: T::Color) -> Self {
        let size = target.bounding_box().size;
        let scale = (size.width / LOGICAL_SIZE.width)
            .min(size.height / LOGICAL_SIZE.height)
            .max(1);
        Self::with_scale(target, scale, on, off)
    }

    /// A given scale (at least 1), centred.
    pub fn with_scale(target: &'a mut T, scale: u32, on: T::Color, off: T::Color) -> Self {
        let scale = scale.max(1);
        let bb = target.bounding_box();
        let margin = |avail: u32, used: u32| (avail.saturating_sub(used) / 2) as i32;
        let offset = bb.top_left
            + Point::new(
                margin(bb.size.width, LOGICAL_SIZE.width * scale),
                margin(bb.size.height, LOGICAL_SIZE.height * scale),
            );
        Fit {
            target,
            scale,
            offset,
            on,
            off,
        }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn offset(&self) -> Point {
        self.offset
    }

    fn color(&self, c: BinaryColor) -> T::Color {
        match c {
            BinaryColor::On => self.on,
            BinaryColor::Off => self.off,
        }
    }

    fn map_area(&self, area: &Rectangle) -> Rectangle {
        let s = self.scale;
        Rectangle::new(
            self.offset + area.top_left * s as i32,
            Size::new(area.size.width * s, area.size.height * s),
        )
    }
}

impl<T: DrawTarget> OriginDimensions for Fit<'_, T> {
    fn size(&self) -> Size {
        LOGICAL_SIZE
    }
}

impl<T: DrawTarget> DrawTarget for Fit<'_, T> {
    type Color = BinaryColor;
    type Error = T::Error;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<BinaryColor>>,
    {
        let bounds = self.bounding_box();
        let (on, off, offset, scale) = (self.on, self.off, self.offset, self.scale);
        let visible = pixels.into_iter().filter(|Pixel(p, _)| bounds.contains(*p));
        if scale == 1 {
            return self.target.draw_iter(
                visible.map(|Pixel(p, c)| Pixel(p + offset, if c.is_on() { on } else { off })),
            );
        }
        for Pixel(p, c) in visible {
            let area = Rectangle::new(p, Size::new(1, 1));
            let color = self.color(c);
            self.target.fill_solid(&self.map_area(&area), color)?;
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: BinaryColor) -> Result<(), Self::Error> {
        let area = area.intersection(&self.bounding_box());
        let color = self.color(color);
        self.target.fill_solid(&self.map_area(&area), color)
    }

    /// Clears the whole target, margins included.
    fn clear(&mut self, color: BinaryColor) -> Result<(), Self::Error> {
        let color = self.color(color);
        self.target.clear(color)
    }
}
