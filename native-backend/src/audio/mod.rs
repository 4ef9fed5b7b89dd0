//! Audio post-processing: loudness normalization and encoders.

pub mod encode;
pub mod loudness;
