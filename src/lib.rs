//! facegate: a face-ID access controller.
//!
//! Data flows one way: camera → [`vision`] → gallery → access → hw. The HTTP API and the CLI
//! call into this library; neither goes around it.

pub mod access;
pub mod api;
pub mod app;
pub mod camera;
pub mod config;
pub mod console;
pub mod crypto;
pub mod eval;
pub mod events_out;
pub mod gallery;
pub mod host;
pub mod hw;
pub mod vision;
