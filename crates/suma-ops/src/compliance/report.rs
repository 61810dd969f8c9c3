//! The machine formats of a compliance report, as strings (printing belongs to `render`): SARIF 2.1.0 for
//! GitHub code scanning and JUnit XML for CI test reports. `--output json` is the [`ComplianceReport`]
//! itself, serialized.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{Check, ComplianceReport, Finding, Severity, Status};

const INFORMATION_URI: &str = "https://github.com/suma-finance/suma";

/// GitHub ranks code-scanning alerts by this score (0.1 to 10).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// A stable 64-bit FNV-1a hash, so code scanning follows one alert across runs.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn rule(check: &Check) -> Value {
    let mut frameworks = BTreeMap::new();
    for (name, list) in [
        ("pci-dss", check.controls.pci_dss),
        ("soc2", check.controls.soc2),
        ("gdpr", check.controls.gdpr),
        ("cis", check.controls.cis),
    ] {
        if !list.is_empty() {
            frameworks.insert(name, list.join(", "));
        }
    }
    let mut tags: Vec<String> = vec!["security".to_owned(), "compliance".to_owned()];
    tags.extend(check.tags().map(str::to_owned));
    json!({
        "id": check.id,
        "name": check.id,
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": check.risk},
        "help": {
            "text": format!("{}\n\nRemediation: {}", check.risk, check.remediation),
            "markdown": format!("**Risk:** {}\n\n**Remediation:** {}", check.risk, check.remediation),
        },
        "defaultConfiguration": {"level": sarif_level(check.severity)},
        "properties": {
            "tags": tags,
            "precision": "very-high",
            "problem.severity": if check.severity >= Severity::High { "error" } else { "warning" },
            "security-severity": security_severity(check.severity),
            "controls": frameworks,
        },
    })
}

/// SARIF 2.1.0: one rule per check that ran, one result per failed, muted (suppressed) or unreadable
/// finding. Results point at `config_uri` (the configuration file) since live resources have no source
/// file; the resource itself is the logical location.
pub fn sarif(report: &ComplianceReport, config_uri: &str) -> String {
    let mut rules: Vec<Value> = report.checks.iter().map(|c| rule(c)).collect();
    let mut index: BTreeMap<String, usize> = report
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.to_owned(), i))
        .collect();
    let mut results = Vec::new();
    for f in report.findings.iter().filter(|f| f.status != Status::Pass) {
        let rule_index = *index.entry(f.check_id.clone()).or_insert_with(|| {
            rules.push(json!({
                "id": f.check_id,
                "name": f.check_id,
                "shortDescription": {"text": "A suppression in the configuration has expired"},
                "help": {"text": "Fix the finding it covered, or renew the suppression with a new reason and date"},
                "defaultConfiguration": {"level": sarif_level(f.severity)},
                "properties": {"tags": ["security", "compliance"], "security-severity": security_severity(f.severity)},
            }));
            rules.len() - 1
        });
        let text = match f.status {
            Status::Error => format!(
                "{}: could not be checked: {}",
                f.resource,
                f.detail.as_deref().unwrap_or("unknown error")
            ),
            _ => format!("{}: observed {}, expected {}", f.resource, f.observed, f.expected),
        };
        let mut result = json!({
            "ruleId": f.check_id,
            "ruleIndex": rule_index,
            "kind": if f.status == Status::Error { "review" } else { "fail" },
            // A result to review (the check could not run) has no level of its own (SARIF 3.27.10).
            "level": if f.status == Status::Error { "none" } else { sarif_level(f.severity) },
            "message": {"text": text},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": config_uri},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [{"fullyQualifiedName": f.resource, "kind": "resource"}],
            }],
            "partialFingerprints": {
                "sumaFinding/v1": fingerprint(&format!("{}|{}|{}", report.environment, f.check_id, f.resource)),
            },
            "properties": {
                "environment": report.environment,
                "resource": f.resource,
                "region": f.region,
                "status": f.status,
                "severity": f.severity,
                "observed": f.observed,
                "expected": f.expected,
            },
        });
        if f.status == Status::Muted {
            result["suppressions"] = json!([{
                "kind": "external",
                "status": "accepted",
                "justification": f.detail.clone().unwrap_or_default(),
            }]);
        }
        results.push(result);
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "suma",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "automationDetails": {"id": format!("suma-compliance/{}/", report.environment)},
            "invocations": [{
                // A check that could not read what it judges leaves the run incomplete.
                "executionSuccessful": !report.findings.iter().any(|f| f.status == Status::Error),
                "startTimeUtc": report.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF always serializes")
}

/// Text safe inside XML attributes and elements; characters XML 1.0 forbids are dropped.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn service_of(f: &Finding) -> &'static str {
    Check::get(&f.check_id).map_or("configuration", |c| c.service)
}

/// JUnit XML: a suite per service, a test case per check and resource; failures are `<failure>`,
/// unreadable resources `<error>`, muted findings `<skipped>` with the suppression's reason.
pub fn junit(report: &ComplianceReport) -> String {
    let mut suites: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        suites.entry(service_of(f)).or_default().push(f);
    }
    let count = |list: &[&Finding], s: Status| list.iter().filter(|f| f.status == s).count();
    let all: Vec<&Finding> = report.findings.iter().collect();
    let seconds = report.duration_ms as f64 / 1000.0;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"suma compliance {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{seconds:.3}\">",
        xml_escape(&report.environment),
        all.len(),
        count(&all, Status::Fail),
        count(&all, Status::Error),
        count(&all, Status::Muted),
    );
    for (service, list) in &suites {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{service}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"0\" timestamp=\"{}\">",
            list.len(),
            count(list, Status::Fail),
            count(list, Status::Error),
            count(list, Status::Muted),
            report.generated_at.format("%Y-%m-%dT%H:%M:%S"),
        );
        for f in list {
            let title = Check::get(&f.check_id).map_or("suppression expired", |c| c.title);
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
                xml_escape(&f.check_id),
                xml_escape(&f.resource)
            );
            let message = format!("observed {}, expected {}", f.observed, f.expected);
            match f.status {
                Status::Pass => {}
                Status::Fail => {
                    let _ = write!(
                        xml,
                        "\n      <failure message=\"{}\" type=\"{}\">{}: {}</failure>\n    ",
                        xml_escape(&message),
                        f.severity,
                        xml_escape(title),
                        xml_escape(&message)
                    );
                }
                Status::Error => {
                    let detail = f.detail.as_deref().unwrap_or("unknown error");
                    let _ = write!(
                        xml,
                        "\n      <error message=\"{}\" type=\"{}\">{}</error>\n    ",
                        xml_escape(detail),
                        f.severity,
                        xml_escape(detail)
                    );
                }
                Status::Muted => {
                    let _ = write!(
                        xml,
                        "\n      <skipped message=\"{}\"/>\n    ",
                        xml_escape(f.detail.as_deref().unwrap_or("muted"))
                    );
                }
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{Summary, CHECKS};

    fn report(findings: Vec<Finding>) -> ComplianceReport {
        ComplianceReport {
            schema_version: 1,
            environment: "prod<&>".into(),
            scope: "account".into(),
            generated_at: "2026-06-01T10:00:00Z".parse().unwrap(),
            duration_ms: 1234,
            fail_on: Severity::High,
            passed: false,
            summary: Summary::of(CHECKS.len(), &findings),
            checks: CHECKS.iter().collect(),
            findings,
        }
    }

    fn f(check: &str, resource: &str, status: Status) -> Finding {
        let c = Check::get(check).map_or(Severity::High, |c| c.severity);
        Finding {
            check_id: check.into(),
            severity: c,
            resource: resource.into(),
            region: Some("eu-west-1".into()),
            status,
            observed: "multi-AZ off".into(),
            expected: "multi-AZ on".into(),
            detail: (status != Status::Pass && status != Status::Fail).then(|| "why \"quoted\" <x>".to_owned()),
        }
    }

    #[test]
    fn sarif_has_rules_for_every_check_and_results_for_non_passes() {
        let r = report(vec![
            f("rds-multi-az", "arn:db-a", Status::Fail),
            f("rds-multi-az", "arn:db-b", Status::Pass),
            f("rds-iam-auth", "arn:db-a", Status::Muted),
            f("alb-access-logs", "arn:lb", Status::Error),
            f("suppression-expired", "x on y", Status::Fail),
        ]);
        let doc: Value = serde_json::from_str(&sarif(&r, "suma.yaml")).unwrap();
        assert_eq!(doc["version"], "2.1.0");
        let run = &doc["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), CHECKS.len() + 1);
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0]["ruleId"], "rds-multi-az");
        assert_eq!(results[0]["level"], "error");
        assert_eq!(
            rules[results[0]["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "rds-multi-az"
        );
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "suma.yaml"
        );
        assert_eq!(results[1]["suppressions"][0]["kind"], "external");
        assert_eq!(results[2]["kind"], "review");
        assert_eq!(results[2]["level"], "none", "a result to review has no level");
        assert_eq!(
            run["invocations"][0]["executionSuccessful"], false,
            "a check that errored leaves the run incomplete"
        );
        assert_eq!(results[3]["ruleId"], "suppression-expired");
        assert_eq!(
            rules[results[3]["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "suppression-expired"
        );
        let fp = results[0]["partialFingerprints"]["sumaFinding/v1"].as_str().unwrap();
        assert_eq!(fp.len(), 16);
    }

    #[test]
    fn junit_counts_and_escapes() {
        let r = report(vec![
            f("rds-multi-az", "arn:db-<a>", Status::Fail),
            f("rds-multi-az", "arn:db-b", Status::Pass),
            f("rds-iam-auth", "arn:db-a", Status::Muted),
            f("alb-access-logs", "arn:lb", Status::Error),
        ]);
        let xml = junit(&r);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"suma compliance prod&lt;&amp;&gt;\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"1.234\">"), "{xml}");
        assert!(xml.contains("<testcase classname=\"rds-multi-az\" name=\"arn:db-&lt;a&gt;\" time=\"0\">"));
        assert!(xml.contains("<skipped message=\"why &quot;quoted&quot; &lt;x&gt;\"/>"));
        assert!(xml.contains("<testsuite name=\"alb\" tests=\"1\" failures=\"0\" errors=\"1\""));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert_eq!(xml.matches("</testcase>").count(), 4);
    }
}
