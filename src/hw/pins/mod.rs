//! GPIO pins behind embedded-hal 1.0 `OutputPin` / `InputPin`: the Linux GPIO character
//! device ([`cdev`]), rppal on a Raspberry Pi ([`rpi`], feature `rpi`) and an in-memory test
//! stand-in ([`MemoryPin`]).

pub mod cdev;
mod memory;
#[cfg(feature = "rpi")]
pub mod rpi;

pub use cdev::GpioChip;
pub use memory::{Edge, MemoryPin};
