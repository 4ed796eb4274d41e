//! Test fixtures shared by the integration tests.
pub mod moto;
