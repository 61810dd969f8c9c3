//! Rendering of task definitions (placeholder until the command is built).
