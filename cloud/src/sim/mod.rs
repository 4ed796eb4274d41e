//! The simulated AWS account (being written).
