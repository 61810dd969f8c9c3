//! Datadog monitors and dashboards (placeholder until built).
