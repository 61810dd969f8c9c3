//! Task definitions (placeholder until built).
