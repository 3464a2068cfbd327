//! Request handlers, by resource.

pub mod door;
pub mod events;
pub mod faces;
pub mod persons;
pub mod recognize;
pub mod system;
