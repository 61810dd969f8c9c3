//! Rendering of Datadog monitors and dashboards (placeholder until the command is built).
