//! Selectors into a runbook step's structured output (`records[0].email`, `json.checks['db/primary']`,
//! `records[*].id`): JSONPath's subset after its `$` that an on-call engineer reads at a glance, no filters
//! or recursion. [`super::expr`] parses them as the tail of a `steps.ID.outputs.NAME` reference.

use serde_json::Value;

/// One step into a structured value, JSONPath's subset an on-call engineer reads at a glance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Selector {
    /// `.name`, or `['any key']` for a key with other characters.
    Key(String),
    /// `[2]`; `[-1]` counts from the end.
    Index(i64),
    /// `[*]`: the rest of the path applied to each element, the results as a list.
    Each,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(k) if is_plain_key(k) => write!(f, ".{k}"),
            Self::Key(k) => write!(f, "['{k}']"),
            Self::Index(i) => write!(f, "[{i}]"),
            Self::Each => f.write_str("[*]"),
        }
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses the selectors after an output's name: `.key`, `[N]`, `[-N]`, `[*]`, `['key']`, `["key"]`.
pub(super) fn selectors(mut text: &str) -> Result<Vec<Selector>, String> {
    let mut path = Vec::new();
    while !text.is_empty() {
        if let Some(rest) = text.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            if !is_plain_key(key) {
                return Err(format!(
                    "`.{key}` is not a key: plain keys are letters, digits, `_` and `-`; write others as `['{key}']`"
                ));
            }
            path.push(Selector::Key(key.to_owned()));
            text = &rest[end..];
        } else if let Some(rest) = text.strip_prefix('[') {
            let quote = rest.chars().next().filter(|c| matches!(c, '\'' | '"'));
            let (selector, after) = match quote {
                Some(q) => {
                    let inner = &rest[1..];
                    let close = inner
                        .find(q)
                        .ok_or_else(|| format!("`[{q}` without its closing `{q}`"))?;
                    let after = inner[close + 1..]
                        .strip_prefix(']')
                        .ok_or_else(|| format!("`[{q}{}{q}` without its closing `]`", &inner[..close]))?;
                    (Selector::Key(inner[..close].to_owned()), after)
                }
                None => {
                    let close = rest.find(']').ok_or("a `[` without its closing `]`")?;
                    let inside = rest[..close].trim();
                    let selector = match inside {
                        "*" => Selector::Each,
                        n => Selector::Index(n.parse().map_err(|_| {
                            format!("`[{inside}]` is neither an index (`[0]`, `[-1]`), `[*]` nor a quoted key (`['{inside}']`)")
                        })?),
                    };
                    (selector, &rest[close + 1..])
                }
            };
            path.push(selector);
            text = after;
        } else {
            return Err(format!(
                "`{text}` does not continue the path: use `.key`, `[N]`, `[*]` or `['key']`"
            ));
        }
    }
    Ok(path)
}

/// A path written on its own (`aws.call`'s `select: services[0].deployments`): a leading key needs no `.`.
pub(super) fn path(text: &str) -> Result<Vec<Selector>, String> {
    if text.starts_with(['.', '[']) {
        selectors(text)
    } else {
        selectors(&format!(".{text}"))
    }
}

/// Follows `path` into `value`; where it leads nowhere, which part and what is there instead.
pub fn select(value: &Value, path: &[Selector]) -> Result<Value, String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(value.clone());
    };
    let kind = suma_core::error::json_kind;
    match (first, value) {
        (Selector::Key(key), Value::Object(map)) => match map.get(key) {
            Some(inner) => select(inner, rest),
            None => {
                let keys: Vec<&str> = map.keys().map(String::as_str).take(12).collect();
                Err(format!(
                    "`{first}` is not there; the object has {}",
                    if keys.is_empty() {
                        "no keys".to_owned()
                    } else {
                        format!("keys {}", keys.join(", "))
                    }
                ))
            }
        },
        (Selector::Index(i), Value::Array(items)) => {
            let at = if *i < 0 { items.len() as i64 + i } else { *i };
            match usize::try_from(at).ok().and_then(|at| items.get(at)) {
                Some(inner) => select(inner, rest),
                None => Err(format!(
                    "`{first}` is out of range: the list has {} element(s)",
                    items.len()
                )),
            }
        }
        (Selector::Each, Value::Array(items)) => items
            .iter()
            .map(|item| select(item, rest))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (_, other) => Err(format!("`{first}` cannot apply to {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::Ref;

    #[test]
    fn malformed_selectors_say_how_to_write_them() {
        let cases = [
            ("steps.q.outputs.records[first]", "neither an index"),
            ("steps.q.outputs.records[0", "without its closing `]`"),
            ("steps.q.outputs.records['email", "without its closing `'`"),
            ("steps.q.outputs.records['email'", "without its closing `]`"),
            ("steps.q.outputs.records.", "is not a key"),
            ("steps.q.outputs.records.a:b", "['a:b']"),
            ("steps.q.outputs.records[0]x", "does not continue the path"),
        ];
        for (text, want) in cases {
            let err = Ref::parse(text).unwrap_err();
            assert!(err.contains(want) && err.contains(text), "{text}: {err}");
        }
    }
}
