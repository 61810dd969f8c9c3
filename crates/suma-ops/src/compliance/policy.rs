//! Resource policies as compliance reads them (KMS key policies, Secrets Manager resource policies):
//! which statements open the resource to every principal. Pure.

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
