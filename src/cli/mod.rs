//! Sub-commands of the `facegate` binary that need more than a few lines.

pub mod doctor;
pub mod events;
pub mod gallery;
pub mod open_set;
pub mod run;
pub mod serve;
