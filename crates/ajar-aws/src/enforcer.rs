//! The AWS enforcement backend.
