//! Rendering of runbooks (placeholder until the command is built).
