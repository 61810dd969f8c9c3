//! Resource policies as compliance reads them (KMS key policies, Secrets Manager resource policies):
//! which statements open the resource to every principal, and the one verdict both checks give. Pure.

use super::evaluate::{error_finding, finding};
use super::Finding;

/// What a policy check expects.
pub const NOT_PUBLIC: &str = "no statement allows * without a condition";

/// The finding of `check_id` on a resource whose policy is `document`: fail when a statement allows
/// every principal without a condition, error when the document is not JSON. `prefix` leads the
/// observation (a key's alias).
pub fn not_public(check_id: &str, resource: &str, region: Option<&str>, prefix: &str, document: &str) -> Finding {
    match public_statements(document) {
        Ok(open) if open.is_empty() => finding(
            check_id,
            resource,
            region,
            true,
            format!("{prefix}no statement allows every principal"),
            NOT_PUBLIC,
        ),
        Ok(open) => finding(
            check_id,
            resource,
            region,
            false,
            format!(
                "{prefix}statement {} allows every principal (*) without a condition",
                open.join(", ")
            ),
            NOT_PUBLIC,
        ),
        Err(e) => error_finding(check_id, resource, region, &e),
    }
}

/// The statements of a resource policy (a KMS key's, a secret's) that allow every principal without a
/// condition, by `Sid` (or `#N` for an unnamed one).
pub fn public_statements(policy: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value = serde_json::from_str(policy).map_err(|e| format!("the policy is not JSON: {e}"))?;
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        serde_json::Value::Null => Vec::new(),
        one => vec![one.clone()],
    };
    let everyone = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s == "*",
        serde_json::Value::Array(list) => list.iter().any(|p| p == "*"),
        _ => false,
    };
    Ok(statements
        .iter()
        .enumerate()
        .filter(|(_, s)| s["Effect"] == "Allow" && s.get("Condition").is_none())
        .filter(|(_, s)| {
            let principal = &s["Principal"];
            everyone(principal) || everyone(&principal["AWS"])
        })
        .map(|(i, s)| s["Sid"].as_str().map_or_else(|| format!("#{}", i + 1), str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_statements_are_those_open_to_everyone_without_a_condition() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"Statement":[{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"}}]}"#,
                &[],
            ),
            (
                r#"{"Statement":[{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}]}"#,
                &["Open"],
            ),
            (r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"}}}"#, &["#1"]),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:root","*"]}}]}"#,
                &["#1"],
            ),
            // A condition (an organisation, a VPC endpoint, a calling service) narrows who it is.
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}]}"#,
                &[],
            ),
            (r#"{"Statement":[{"Effect":"Deny","Principal":"*"}]}"#, &[]),
        ];
        for (policy, public) in cases {
            assert_eq!(public_statements(policy).unwrap(), public.to_vec(), "{policy}");
        }
        assert!(public_statements("not json").is_err());
    }
}
