//! Risk scoring.

pub mod model;
