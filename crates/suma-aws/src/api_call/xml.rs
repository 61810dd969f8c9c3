//! A query-protocol answer (XML) read back as JSON, without the service's model: an element with text
//! only is a string; an element is a list when its children are `member` or `item` elements (the
//! protocols' own list markers), when they are named after it (`DBInstances` holding `DBInstance`,
//! `VpcSecurityGroups` holding `VpcSecurityGroupMembership`, `TagList` holding `Tag`), or when they all
//! share one name and there are several (a structure never repeats a field); otherwise it is an object.
//! Values stay strings, as the protocol sends them. The one shape the rules cannot tell is a list of a
//! single element named unlike its parent (ElastiCache's `MemberClusters` holding one `ClusterId`),
//! which reads as an object.

use serde_json::{Map, Value};
use xmlparser::{ElementEnd, Token, Tokenizer};

/// An XML element as parsed.
#[derive(Debug, Default)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

fn parse(text: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = vec![Element::default()];
    for token in Tokenizer::from(text) {
        match token.map_err(|e| format!("the answer is not XML: {e}"))? {
            Token::ElementStart { local, .. } => stack.push(Element {
                name: local.as_str().to_owned(),
                ..Element::default()
            }),
            Token::ElementEnd { end, .. } => {
                if matches!(end, ElementEnd::Open) {
                    continue;
                }
                let done = stack.pop().ok_or("the answer's XML closes more than it opens")?;
                stack
                    .last_mut()
                    .ok_or("the answer's XML closes more than it opens")?
                    .children
                    .push(done);
            }
            Token::Text { text } => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&unescape(text.as_str()));
                }
            }
            Token::Cdata { text, .. } => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(text.as_str());
                }
            }
            _ => {}
        }
    }
    let mut document = stack
        .pop()
        .filter(|_| stack.is_empty())
        .ok_or("the answer's XML is not closed")?;
    document
        .children
        .pop()
        .ok_or_else(|| "the answer holds no XML element".to_owned())
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let entity = &after[..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[at..=at + 1 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether `parent`'s children are the members of a list.
fn is_list(parent: &Element) -> bool {
    let Some(first) = parent.children.first() else {
        return false;
    };
    if !parent.children.iter().all(|c| c.name == first.name) {
        return false;
    }
    if matches!(first.name.as_str(), "member" | "item") || parent.children.len() > 1 {
        return true;
    }
    let stem = ["List", "Set", "es", "s"]
        .iter()
        .find_map(|suffix| parent.name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty());
    stem.is_some_and(|stem| first.name.starts_with(stem))
}

fn to_json(element: &Element) -> Value {
    if element.children.is_empty() {
        return Value::String(element.text.clone());
    }
    if is_list(element) {
        return Value::Array(element.children.iter().map(to_json).collect());
    }
    let mut object = Map::new();
    for child in &element.children {
        let value = to_json(child);
        match object.get_mut(&child.name) {
            Some(Value::Array(items)) if child_repeats(element, &child.name) => items.push(value),
            Some(_) => {}
            None if child_repeats(element, &child.name) => {
                object.insert(child.name.clone(), Value::Array(vec![value]));
            }
            None => {
                object.insert(child.name.clone(), value);
            }
        }
    }
    Value::Object(object)
}

/// A flattened list inside a structure: the same field more than once.
fn child_repeats(parent: &Element, name: &str) -> bool {
    parent.children.iter().filter(|c| c.name == name).count() > 1
}

/// A query-protocol answer's result: the `{Operation}Result` element of `{Operation}Response` (EC2's
/// answer is the response itself, without its `requestId`).
pub fn query_result(operation: &str, text: &str) -> Result<Value, String> {
    let root = parse(text)?;
    let result_name = format!("{operation}Result");
    if let Some(result) = root.children.iter().find(|c| c.name == result_name) {
        return Ok(match to_json(result) {
            // An empty result (`<DeleteXResult/>`) reads as an empty object, not an empty string.
            Value::String(s) if s.trim().is_empty() => Value::Object(Map::new()),
            other => other,
        });
    }
    let mut root = root;
    root.children
        .retain(|c| !matches!(c.name.as_str(), "requestId" | "ResponseMetadata"));
    Ok(match to_json(&root) {
        Value::String(_) => Value::Object(Map::new()),
        other => other,
    })
}

/// The `Code` and `Message` of a query-protocol error answer (`<ErrorResponse><Error>` or EC2's
/// `<Response><Errors><Error>`), found wherever they sit.
pub fn query_error(text: &str) -> Option<(String, String)> {
    fn find<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
        if element.name == name {
            return Some(element);
        }
        element.children.iter().find_map(|c| find(c, name))
    }
    let root = parse(text).ok()?;
    let error = find(&root, "Error")?;
    let code = find(error, "Code")?.text.trim().to_owned();
    let message = find(error, "Message")
        .map(|m| m.text.trim().to_owned())
        .unwrap_or_default();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rds_answers_read_as_the_json_a_runbook_selects_from() {
        let one = r#"<?xml version="1.0"?>
<DescribeDBInstancesResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <DescribeDBInstancesResult>
    <DBInstances>
      <DBInstance>
        <DBInstanceIdentifier>auth-db</DBInstanceIdentifier>
        <DBInstanceStatus>available</DBInstanceStatus>
        <Endpoint><Address>db.local</Address><Port>5432</Port></Endpoint>
        <VpcSecurityGroups>
          <VpcSecurityGroupMembership><VpcSecurityGroupId>sg-1</VpcSecurityGroupId><Status>active</Status></VpcSecurityGroupMembership>
        </VpcSecurityGroups>
        <ReadReplicaDBInstanceIdentifiers/>
        <TagList><Tag><Key>team</Key><Value>a &amp; b</Value></Tag></TagList>
        <PendingModifiedValues><MasterUserPassword>****</MasterUserPassword></PendingModifiedValues>
      </DBInstance>
    </DBInstances>
  </DescribeDBInstancesResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</DescribeDBInstancesResponse>"#;
        assert_eq!(
            query_result("DescribeDBInstances", one).unwrap(),
            json!({"DBInstances": [{
                "DBInstanceIdentifier": "auth-db",
                "DBInstanceStatus": "available",
                "Endpoint": {"Address": "db.local", "Port": "5432"},
                "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"}],
                "ReadReplicaDBInstanceIdentifiers": "",
                "TagList": [{"Key": "team", "Value": "a & b"}],
                // One child named unlike its parent, whose name ends in `s`: a structure, as it is.
                "PendingModifiedValues": {"MasterUserPassword": "****"},
            }]})
        );
    }

    #[test]
    fn member_and_item_lists_repeated_fields_and_empty_results() {
        let elb = "<DescribeTargetHealthResponse><DescribeTargetHealthResult><TargetHealthDescriptions>\
            <member><Target><Id>10.0.0.1</Id></Target><TargetHealth><State>healthy</State></TargetHealth></member>\
            </TargetHealthDescriptions></DescribeTargetHealthResult></DescribeTargetHealthResponse>";
        assert_eq!(
            query_result("DescribeTargetHealth", elb).unwrap(),
            json!({"TargetHealthDescriptions": [{"Target": {"Id": "10.0.0.1"}, "TargetHealth": {"State": "healthy"}}]})
        );
        let ec2 = "<DescribeVpcsResponse><requestId>x</requestId><vpcSet><item><vpcId>vpc-1</vpcId></item>\
            <item><vpcId>vpc-2</vpcId></item></vpcSet></DescribeVpcsResponse>";
        assert_eq!(
            query_result("DescribeVpcs", ec2).unwrap(),
            json!({"vpcSet": [{"vpcId": "vpc-1"}, {"vpcId": "vpc-2"}]})
        );
        let flattened = "<XResponse><XResult><Name>a</Name><Zone>1</Zone><Zone>2</Zone></XResult></XResponse>";
        assert_eq!(
            query_result("X", flattened).unwrap(),
            json!({"Name": "a", "Zone": ["1", "2"]})
        );
        let several = "<XResponse><XResult><MemberClusters><ClusterId>a</ClusterId><ClusterId>b</ClusterId>\
            </MemberClusters></XResult></XResponse>";
        assert_eq!(
            query_result("X", several).unwrap(),
            json!({"MemberClusters": ["a", "b"]})
        );
        assert_eq!(
            query_result(
                "TagResource",
                "<TagResourceResponse><TagResourceResult/></TagResourceResponse>"
            )
            .unwrap(),
            json!({})
        );
        assert_eq!(unescape("&lt;&#65;&#x42;&unknown;&"), "<AB&unknown;&");
        assert!(query_result("X", "not xml <").is_err());
    }

    #[test]
    fn errors_give_their_code_and_message_in_either_shape() {
        let query = "<ErrorResponse><Error><Type>Sender</Type><Code>DBInstanceNotFound</Code>\
            <Message>DBInstance nope not found.</Message></Error><RequestId>r</RequestId></ErrorResponse>";
        assert_eq!(
            query_error(query),
            Some(("DBInstanceNotFound".to_owned(), "DBInstance nope not found.".to_owned()))
        );
        let ec2 = "<Response><Errors><Error><Code>InvalidGroup.NotFound</Code><Message>no sg</Message></Error></Errors></Response>";
        assert_eq!(
            query_error(ec2),
            Some(("InvalidGroup.NotFound".to_owned(), "no sg".to_owned()))
        );
        assert_eq!(query_error("<html>bad gateway</html>"), None);
    }
}
