//! The layout of each screen on a 128x64 monochrome canvas:
//!
//! ```text
//! +--------+------------------------+
//! |  icon  |  TITLE (10x20 font)    |   y 4..28
//! +--------+------------------------+   rule at y 31
//! |   detail line 1 (7x13 font)     |   y 35..48
//! |   detail line 2                 |   y 50..63
//! +---------------------------------+
//! ```
//!
//! Detail lines hold 18 characters; longer text is wrapped at spaces onto the second line
//! and cut there with an ellipsis. Fonts are ISO 8859-1, so Latin-1 names (é, ü, ñ) show as
//! written; other characters show as '?'.

use embedded_graphics::mono_font::iso_8859_1::{FONT_7X13, FONT_7X13_BOLD, FONT_10X20};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{
    Arc, Circle, Line, Polyline, PrimitiveStyle, Rectangle, StrokeAlignment,
};
use embedded_graphics::text::{Baseline, Text};

use super::Screen;
use super::fit::LOGICAL_SIZE;

const ON: BinaryColor = BinaryColor::On;
const ICON: Point = Point::new(4, 4);
const TITLE_X: i32 = 34;
const TITLE_Y: i32 = 6;
const RULE_Y: i32 = 31;
const LINE_Y: [i32; 2] = [35, 50];
const LINE_CHARS: usize = 18;

/// Draw `screen` on a 128x64 canvas (cleared first).
pub fn draw_screen<D>(d: &mut D, screen: &Screen) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    d.clear(BinaryColor::Off)?;
    let (title, detail, font): (&str, &str, &MonoFont) = match screen {
        Screen::Idle => ("READY", "Look at the camera", &FONT_7X13),
        Screen::Looking => ("LOOKING", "Hold still", &FONT_7X13),
        Screen::Granted { name } => ("WELCOME", name.as_str(), &FONT_7X13_BOLD),
        Screen::Denied { reason } => ("DENIED", reason.as_str(), &FONT_7X13),
        Screen::Offline => ("OFFLINE", "No network", &FONT_7X13),
        Screen::CameraLost => ("NO CAMERA", "Camera not working", &FONT_7X13),
        Screen::TurnHead { left: true } => ("TURN", "Turn your head to your LEFT", &FONT_7X13),
        Screen::TurnHead { left: false } => ("TURN", "Turn your head to your RIGHT", &FONT_7X13),
    };
    icon(d, screen)?;
    Text::with_baseline(
        title,
        Point::new(TITLE_X, TITLE_Y),
        MonoTextStyle::new(&FONT_10X20, ON),
        Baseline::Top,
    )
    .draw(d)?;
    Line::new(
        Point::new(0, RULE_Y),
        Point::new(LOGICAL_SIZE.width as i32 - 1, RULE_Y),
    )
    .into_styled(PrimitiveStyle::with_stroke(ON, 1))
    .draw(d)?;
    let (lines, cut) = wrap_text(detail, LINE_CHARS, LINE_Y.len());
    for (i, line) in lines.iter().enumerate() {
        let ellipsis = cut && i + 1 == lines.len();
        text_line(d, line, ellipsis, font, LINE_Y[i])?;
    }
    Ok(())
}

/// One centred line; `ellipsis` adds a three-dot cell after the text.
fn text_line<D>(
    d: &mut D,
    text: &str,
    ellipsis: bool,
    font: &MonoFont,
    y: i32,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let cell = font.character_size.width + font.character_spacing;
    let cells = text.chars().count() as u32 + u32::from(ellipsis);
    let width = cells * cell;
    let x = (LOGICAL_SIZE.width.saturating_sub(width) / 2) as i32;
    let end = Text::with_baseline(
        text,
        Point::new(x, y),
        MonoTextStyle::new(font, ON),
        Baseline::Top,
    )
    .draw(d)?;
    if ellipsis {
        // '…' is not in the fonts: three dots on the baseline, spread over one cell.
        let base = y + font.baseline as i32;
        for dx in [0, 2, 4] {
            Pixel(Point::new(end.x + dx, base), ON).draw(d)?;
        }
    }
    Ok(())
}

/// Word-wrap `text` into at most `max_lines` lines of `width` characters. Returns the lines
/// and whether the text was cut, in which case the last line is one character shorter than
/// `width` to leave room for an ellipsis. Control characters become spaces and runs of spaces
/// collapse; a word longer than a line is split.
pub fn wrap_text(text: &str, width: usize, max_lines: usize) -> (Vec<String>, bool) {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = clean.split_whitespace().collect();
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut pieces: Vec<String> = Vec::new();
    for word in words {
        // Split over-long words into line-sized pieces.
        let chars: Vec<char> = word.chars().collect();
        pieces.extend(chars.chunks(width.max(1)).map(|c| c.iter().collect()));
    }
    for piece in &pieces {
        let needed = if current.is_empty() {
            piece.chars().count()
        } else {
            current.chars().count() + 1 + piece.chars().count()
        };
        if needed > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(piece);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() <= max_lines {
        return (lines, false);
    }
    if max_lines == 0 {
        return (Vec::new(), true);
    }
    let rest = lines[max_lines - 1..].join(" ");
    lines.truncate(max_lines - 1);
    let last: String = rest.chars().take(width.saturating_sub(1)).collect();
    lines.push(last.trim_end().to_owned());
    (lines, true)
}

/// The 24x24 icon at the top left.
fn icon<D>(d: &mut D, screen: &Screen) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let at = |x: i32, y: i32| ICON + Point::new(x, y);
    let stroke = |w: u32| PrimitiveStyle::with_stroke(ON, w);
    let inner = |w: u32| {
        let mut s = PrimitiveStyle::with_stroke(ON, w);
        s.stroke_alignment = StrokeAlignment::Inside;
        s
    };
    let ring = Circle::new(at(0, 0), 24).into_styled(inner(2));
    let face = |d: &mut D| -> Result<(), D::Error> {
        Rectangle::new(at(7, 8), Size::new(3, 3))
            .into_styled(PrimitiveStyle::with_fill(ON))
            .draw(d)?;
        Rectangle::new(at(14, 8), Size::new(3, 3))
            .into_styled(PrimitiveStyle::with_fill(ON))
            .draw(d)?;
        Arc::new(at(6, 6), 12, 30.0.deg(), 120.0.deg())
            .into_styled(stroke(1))
            .draw(d)
    };
    match screen {
        Screen::Idle => {
            ring.draw(d)?;
            face(d)?;
        }
        Screen::Looking => {
            // Viewfinder corners around a face.
            for (x, y, dx, dy) in [
                (0, 0, 1, 1),
                (23, 0, -1, 1),
                (0, 23, 1, -1),
                (23, 23, -1, -1),
            ] {
                Polyline::new(&[at(x, y + 6 * dy), at(x, y), at(x + 6 * dx, y)])
                    .into_styled(stroke(2))
                    .draw(d)?;
            }
            face(d)?;
        }
        Screen::Granted { .. } => {
            ring.draw(d)?;
            Polyline::new(&[at(6, 12), at(10, 17), at(18, 7)])
                .into_styled(stroke(3))
                .draw(d)?;
        }
        Screen::Denied { .. } => {
            ring.draw(d)?;
            Line::new(at(7, 7), at(16, 16))
                .into_styled(stroke(3))
                .draw(d)?;
            Line::new(at(16, 7), at(7, 16))
                .into_styled(stroke(3))
                .draw(d)?;
        }
        Screen::Offline => {
            // Signal arcs around the dot they radiate from, struck through.
            let centre = at(12, 21);
            for diameter in [30u32, 20, 10] {
                let r = (diameter / 2) as i32;
                Arc::new(centre - Point::new(r, r), diameter, 225.0.deg(), 90.0.deg())
                    .into_styled(stroke(2))
                    .draw(d)?;
            }
            Circle::new(centre - Point::new(2, 2), 5)
                .into_styled(PrimitiveStyle::with_fill(ON))
                .draw(d)?;
            Line::new(at(2, 23), at(22, 3))
                .into_styled(stroke(2))
                .draw(d)?;
        }
        Screen::TurnHead { left } => {
            // An arrow across a face, pointing the way the head turns as the person sees
            // the display (their left is the display's left).
            face(d)?;
            let (tip, tail, dx) = if *left { (1, 22, 1) } else { (22, 1, -1) };
            Line::new(at(tail, 21), at(tip, 21))
                .into_styled(stroke(2))
                .draw(d)?;
            Polyline::new(&[at(tip + 5 * dx, 16), at(tip, 21), at(tip + 5 * dx, 26)])
                .into_styled(stroke(2))
                .draw(d)?;
        }
        Screen::CameraLost => {
            Rectangle::new(at(0, 6), Size::new(24, 16))
                .into_styled(inner(2))
                .draw(d)?;
            Rectangle::new(at(6, 3), Size::new(8, 4))
                .into_styled(PrimitiveStyle::with_fill(ON))
                .draw(d)?;
            Circle::new(at(7, 9), 10).into_styled(inner(2)).draw(d)?;
            Line::new(at(1, 23), at(22, 1))
                .into_styled(stroke(2))
                .draw(d)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_fits_cuts_and_cleans() {
        assert_eq!(
            wrap_text("Ada Lovelace", 18, 2),
            (vec!["Ada Lovelace".into()], false)
        );
        assert_eq!(
            wrap_text("Maximilian Alexander von Hohenberg", 18, 2),
            (vec!["Maximilian".into(), "Alexander von Hoh".into()], true)
        );
        assert_eq!(
            wrap_text("Grace  Brewster\nMurray Hopper", 18, 2),
            (vec!["Grace Brewster".into(), "Murray Hopper".into()], false)
        );
        // A word longer than a line is split, and the cut line leaves a cell for the ellipsis.
        assert_eq!(
            wrap_text("Wolfeschlegelsteinhausenbergerdorff", 18, 2),
            (
                vec!["Wolfeschlegelstein".into(), "hausenbergerdorff".into()],
                false
            )
        );
        assert_eq!(
            wrap_text("abcdefghijklmnopqrstuvwxyz0123456789xyz", 18, 2),
            (
                vec!["abcdefghijklmnopqr".into(), "stuvwxyz012345678".into()],
                true
            )
        );
        assert_eq!(wrap_text("  ", 18, 2), (vec![], false));
        // Characters are counted, not bytes.
        assert_eq!(
            wrap_text("Zoë Ñúñez", 9, 1),
            (vec!["Zoë Ñúñez".into()], false)
        );
    }
}
