//! The AWS adapter on the official SDK (being written).
