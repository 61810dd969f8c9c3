//! Runbooks (placeholder until built).
