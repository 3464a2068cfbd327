//! Access decisions: the policy that turns frames into grant / deny / unknown ([`policy`]), the
//! per-person rules it applies ([`rules`]), and the door state machine ([`door`]).

pub mod config;
pub mod door;
pub mod policy;
pub mod rules;
