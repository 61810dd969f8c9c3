//! One environment for the engines' unit tests: staging's shape (a stable and a canary service, the
//! weighted ALB rule between their target groups, a database, a Route 53 record, Prometheus), which a
//! test extends with the YAML of the sections it is about.

use suma_core::config::Environment;

pub const REGION: &str = "eu-west-1";
pub const RULE: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/x/1/2/3";
pub const STABLE_TG: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/s/1";
pub const CANARY_TG: &str = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/c/1";

/// The test environment with `extra` (more top-level keys of an environment, as YAML lines) added.
pub fn environment(extra: &str) -> Environment {
    let yaml = format!(
        "primary_region: {REGION}\ndr_region: eu-central-1\necs: {{ cluster: c, service: auth-service, canary_service: auth-service-canary, container: auth-service, container_port: 8080, desired_count: 4, dr: {{ cluster: c, service: auth-service }} }}\nalb: {{ listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/x/1/2', rule_arn: '{RULE}', stable_target_group_arn: '{STABLE_TG}', canary_target_group_arn: '{CANARY_TG}' }}\nrds: {{ primary: {{ identifier: db, region: {REGION} }} }}\ndns: {{ hosted_zone_id: Z, record_name: auth.example.com }}\nmetrics: {{ provider: prometheus, prometheus_url: 'http://127.0.0.1:9' }}\n{extra}"
    );
    serde_norway::from_str(&yaml).expect("the test environment parses")
}
