//! (being built)
pub mod netns;
pub mod toxiproxy;
