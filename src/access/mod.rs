//! Access decisions: the policy that turns frames into grant / deny / unknown ([`policy`]), the
//! per-person rules it applies ([`rules`]), the door state machine ([`door`]), and the door
//! loop that joins camera, vision, gallery, policy and hardware ([`daemon`]).

pub mod config;
pub mod daemon;
pub mod door;
pub mod policy;
pub mod rules;
