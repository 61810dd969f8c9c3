//! An operation's input as the query protocols send it: the JSON a runbook writes (as in the API
//! reference, `{"DBInstanceIdentifier": "db", "Filters": [{"Name": "engine", "Values": ["postgres"]}]}`)
//! flattened to form fields (`Filters.member.1.Name=engine`, `Filters.member.1.Values.member.1=postgres`);
//! EC2 numbers list members without `member` (`Filter.1.Name`).

use serde_json::Value;

/// The form body of `operation` with `input`: `Action`, `Version`, then the flattened fields.
pub fn form_body(operation: &str, api_version: &str, input: &Value, ec2: bool) -> Result<String, String> {
    let mut fields = vec![
        ("Action".to_owned(), operation.to_owned()),
        ("Version".to_owned(), api_version.to_owned()),
    ];
    match input {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                flatten(key.clone(), value, ec2, &mut fields);
            }
        }
        other => {
            return Err(format!(
                "the input is {}, and an operation's input is an object of its parameters",
                suma_core::error::json_kind(other)
            ))
        }
    }
    let mut form = String::new();
    for (name, value) in fields {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(&encode(&name));
        form.push('=');
        form.push_str(&encode(&value));
    }
    Ok(form)
}

fn flatten(name: String, value: &Value, ec2: bool, fields: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => fields.push((name, b.to_string())),
        Value::Number(n) => fields.push((name, n.to_string())),
        Value::String(s) => fields.push((name, s.clone())),
        // An empty list is sent as the bare name: the query protocol's way of saying "none".
        Value::Array(items) if items.is_empty() => fields.push((name, String::new())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let member = if ec2 {
                    format!("{name}.{}", i + 1)
                } else {
                    format!("{name}.member.{}", i + 1)
                };
                flatten(member, item, ec2, fields);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                flatten(format!("{name}.{key}"), item, ec2, fields);
            }
        }
    }
}

/// `application/x-www-form-urlencoded` as SigV4 expects it: unreserved characters kept, the rest `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_flatten_as_the_query_protocols_send_them() {
        let input = json!({
            "DBInstanceIdentifier": "auth db",
            "Filters": [{"Name": "engine", "Values": ["postgres", "mysql"]}],
            "MaxRecords": 20,
            "IncludeShared": true,
            "Marker": null,
            "TagKeys": [],
        });
        assert_eq!(
            form_body("DescribeDBInstances", "2014-10-31", &input, false).unwrap(),
            "Action=DescribeDBInstances&Version=2014-10-31&DBInstanceIdentifier=auth%20db\
             &Filters.member.1.Name=engine&Filters.member.1.Values.member.1=postgres\
             &Filters.member.1.Values.member.2=mysql&IncludeShared=true&MaxRecords=20&TagKeys="
        );
        let ec2 = json!({"Filter": [{"Name": "group-name", "Value": ["db"]}], "GroupId": ["sg-1"]});
        assert_eq!(
            form_body("DescribeSecurityGroups", "2016-11-15", &ec2, true).unwrap(),
            "Action=DescribeSecurityGroups&Version=2016-11-15&Filter.1.Name=group-name&Filter.1.Value.1=db&GroupId.1=sg-1"
        );
        assert_eq!(
            form_body("GetCallerIdentity", "2011-06-15", &Value::Null, false).unwrap(),
            "Action=GetCallerIdentity&Version=2011-06-15"
        );
        let e = form_body("DescribeDBInstances", "2014-10-31", &json!(["db"]), false).unwrap_err();
        assert!(e.contains("a list") && e.contains("object of its parameters"), "{e}");
    }
}
