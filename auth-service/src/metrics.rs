//! Prometheus metrics.
//!
//! Names mirror the service's Datadog metrics; every series carries a `deployment` label (from
//! `DEPLOYMENT_LABEL`) so a canary and stable can be told apart on one dashboard. Each [`Metrics`] owns its
//! registry, so tests running several apps in one process do not share counters.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `auth_login_attempts_total`.
    pub login_attempts: IntCounter,
    /// `auth_login_failures_total{reason}`.
    pub login_failures: IntCounterVec,
    /// `auth_login_success_total`.
    pub login_success: IntCounter,
    /// `auth_registration_total`.
    pub registrations: IntCounter,
    /// `auth_token_refresh_total{result}`.
    pub token_refresh: IntCounterVec,
    /// `auth_token_reuse_detected_total`.
    pub token_reuse: IntCounter,
    /// `auth_account_lockouts_total`.
    pub lockouts: IntCounter,
    /// `auth_audit_write_failures_total`: audit records that could not be written (alerted on: a gap in
    /// the audit trail).
    pub audit_write_failures: IntCounter,
    /// `auth_audit_sealed_total`: audit records linked into the hash chain.
    pub audit_sealed: IntCounter,
    /// `auth_refresh_tokens_pruned_total`: rows of long-expired refresh tokens deleted.
    pub refresh_tokens_pruned: IntCounter,
    /// `auth_breach_check_unavailable_total`: new passwords the breached-password API did not answer for.
    pub breach_check_unavailable: IntCounter,
    /// `auth_session_created_total`.
    pub sessions_created: IntCounter,
    /// `auth_rate_limited_total{scope}`.
    pub rate_limited: IntCounterVec,
    /// `auth_key_reloads_total{result}`.
    pub key_reloads: IntCounterVec,
    /// `auth_fault_injected_total{kind}`.
    pub faults: IntCounterVec,
    /// `auth_admin_actions_total{action,result}`: admin API calls by action and result (`success`,
    /// `denied` for a missing, invalid or non-admin token, `failed` for a refused request).
    pub admin_actions: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn opts(name: &str, help: &str, deployment: &str) -> Opts {
    Opts::new(name, help).const_label("deployment", deployment)
}

impl Metrics {
    /// Registers every metric with the deployment label.
    pub fn new(deployment: &str) -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(opts(name, help, deployment)).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(opts(name, help, deployment), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .const_label("deployment", deployment)
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            &["route", "method"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("unique metric");
        let metrics = Self {
            http_requests: counter_vec(
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration,
            login_attempts: counter("auth_login_attempts_total", "Login attempts"),
            login_failures: counter_vec("auth_login_failures_total", "Failed logins by reason", &["reason"]),
            login_success: counter("auth_login_success_total", "Successful logins"),
            registrations: counter("auth_registration_total", "Registration requests accepted"),
            token_refresh: counter_vec("auth_token_refresh_total", "Refresh requests by result", &["result"]),
            token_reuse: counter(
                "auth_token_reuse_detected_total",
                "Rotated refresh tokens presented again",
            ),
            lockouts: counter("auth_account_lockouts_total", "Accounts locked after failed logins"),
            audit_write_failures: counter(
                "auth_audit_write_failures_total",
                "Audit records that could not be written",
            ),
            audit_sealed: counter("auth_audit_sealed_total", "Audit records linked into the hash chain"),
            refresh_tokens_pruned: counter(
                "auth_refresh_tokens_pruned_total",
                "Rows of long-expired refresh tokens deleted",
            ),
            breach_check_unavailable: counter(
                "auth_breach_check_unavailable_total",
                "New passwords the breached-password API did not answer for",
            ),
            sessions_created: counter("auth_session_created_total", "Sessions created"),
            rate_limited: counter_vec(
                "auth_rate_limited_total",
                "Requests refused by a rate limit",
                &["scope"],
            ),
            key_reloads: counter_vec("auth_key_reloads_total", "JWT key reloads by result", &["result"]),
            faults: counter_vec("auth_fault_injected_total", "Injected faults by kind", &["kind"]),
            admin_actions: counter_vec(
                "auth_admin_actions_total",
                "Admin API calls by action and result",
                &["action", "result"],
            ),
            registry,
        };
        // Known label values start at zero, so dashboards and alerts see the series before the first event.
        for result in ["rotated", "grace_retry", "invalid", "reuse", "session_ended"] {
            metrics.token_refresh.with_label_values(&[result]);
        }
        for reason in ["invalid_credentials", "locked", "rate_limited"] {
            metrics.login_failures.with_label_values(&[reason]);
        }
        for result in ["success", "failure"] {
            metrics.key_reloads.with_label_values(&[result]);
        }
        for action in crate::http::admin::ACTIONS {
            for result in ["success", "denied", "failed"] {
                metrics.admin_actions.with_label_values(&[action, result]);
            }
        }
        metrics
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
