//! `${name}` substitution: the one engine task-definition templates, Datadog templates and runbook
//! arguments share.
//!
//! A template's references are found in its raw text first ([`scan`]), so an unknown name or a `${`
//! without its `}` is reported with line and column before anything is parsed or sent. Values are then
//! substituted into the parsed document's strings ([`substitute_yaml`], [`substitute_json`], or
//! [`render`] for one string), never into the text, so a value holding a quote, `: ` or `#` cannot change
//! the document's structure. In YAML, a scalar that is exactly one reference takes the value's YAML type
//! (`containerPort: ${container_port}` is a number). `$$` is a literal `$`; a `$` not followed by `{` is
//! kept as written (a shell command, a Datadog `$5`).

/// What a name between `${` and `}` may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Letters, digits and `_` (template variables).
    Identifier,
    /// Also `.` and `-` (runbook references such as `steps.db-check.outputs.multi_az`), `|` and
    /// spaces for a runbook's alternatives (`steps.a.outputs.x || steps.b.outputs.x`), and what a
    /// selector into a structured output is written with (`records[0]`, `[*]`, `['key']`, `["a/b"]`).
    Path,
}

impl Names {
    fn accepts(self, name: &str) -> bool {
        !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || c == '_'
                    || (self == Names::Path
                        && matches!(c, '.' | '-' | '|' | ' ' | '[' | ']' | '*' | '\'' | '"' | '/' | ':'))
            })
    }

    fn describe(self) -> &'static str {
        match self {
            Names::Identifier => "names are letters, digits and `_`",
            Names::Path => {
                "names are letters, digits, `_`, `.` and `-`, selectors such as `[0]` or `['key']`, alternatives joined by `||`"
            }
        }
    }
}

/// A part of a string: plain text, a `$$` (a literal `$`), or a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Dollar,
    /// `${name}` starting at byte `offset`.
    Ref {
        name: &'a str,
        offset: usize,
    },
}

/// A `${` that is not a reference: where (byte offset in its string or line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub offset: usize,
    pub message: String,
}

/// Splits `s` into text, literal dollars and references.
pub fn pieces(s: &str, names: Names) -> Result<Vec<Piece<'_>>, Malformed> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push(Piece::Text(&s[text_start..i]));
                out.push(Piece::Dollar);
                i += 2;
                text_start = i;
            }
            Some(b'{') => {
                out.push(Piece::Text(&s[text_start..i]));
                let Some(len) = s[i + 2..].find('}') else {
                    return Err(Malformed {
                        offset: i,
                        message: "`${` without a closing `}`".to_owned(),
                    });
                };
                let name = &s[i + 2..i + 2 + len];
                if !names.accepts(name) {
                    return Err(Malformed {
                        offset: i,
                        message: format!(
                            "`${{{name}}}` is not a reference: {} (write `$$` for a literal `$`)",
                            names.describe()
                        ),
                    });
                }
                out.push(Piece::Ref { name, offset: i });
                i += 3 + len;
                text_start = i;
            }
            _ => i += 1,
        }
    }
    out.push(Piece::Text(&s[text_start..]));
    out.retain(|p| *p != Piece::Text(""));
    Ok(out)
}

/// A reference (or a malformed `${`) found in a template's text, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub line: usize,
    pub column: usize,
    /// The name, or why it is not a reference.
    pub reference: Result<&'a str, String>,
}

/// Every reference in `text`, line by line. Lines whose first non-blank character is `comment` (YAML's
/// `#`) are not scanned.
pub fn scan(text: &str, names: Names, comment: Option<char>) -> Vec<Found<'_>> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if comment.is_some_and(|c| line.trim_start().starts_with(c)) {
            continue;
        }
        let column = |offset: usize| line[..offset].chars().count() + 1;
        match pieces(line, names) {
            Err(malformed) => found.push(Found {
                line: n + 1,
                column: column(malformed.offset),
                reference: Err(malformed.message),
            }),
            Ok(pieces) => found.extend(pieces.into_iter().filter_map(|piece| match piece {
                Piece::Ref { name, offset } => Some(Found {
                    line: n + 1,
                    column: column(offset),
                    reference: Ok(name),
                }),
                _ => None,
            })),
        }
    }
    found
}

/// Why a string could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError<E> {
    #[error("{}", .0.message)]
    Malformed(Malformed),
    #[error(transparent)]
    Resolve(E),
}

/// `s` with every reference replaced by what `resolve` gives for its name.
pub fn render<E>(
    s: &str,
    names: Names,
    mut resolve: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, RenderError<E>> {
    let mut out = String::with_capacity(s.len());
    for piece in pieces(s, names).map_err(RenderError::Malformed)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Dollar => out.push('$'),
            Piece::Ref { name, .. } => out.push_str(&resolve(name).map_err(RenderError::Resolve)?),
        }
    }
    Ok(out)
}

/// The name when `s` is exactly one reference.
pub fn whole(s: &str, names: Names) -> Option<&str> {
    match pieces(s, names).ok()?.as_slice() {
        [Piece::Ref { name, .. }] => Some(name),
        _ => None,
    }
}

/// Substitutes into every string of a parsed YAML document, mapping keys included. A scalar that is
/// exactly one reference to a value that reads as a YAML number or boolean becomes that number or boolean.
pub fn substitute_yaml<E>(
    value: &mut serde_norway::Value,
    names: Names,
    resolve: &mut dyn FnMut(&str) -> Result<String, E>,
) -> Result<(), RenderError<E>> {
    use serde_norway::Value;
    match value {
        Value::String(s) => {
            if let Some(name) = whole(s, names) {
                let resolved = resolve(name).map_err(RenderError::Resolve)?;
                *value = match serde_norway::from_str::<Value>(&resolved) {
                    Ok(typed @ (Value::Number(_) | Value::Bool(_))) => typed,
                    _ => Value::String(resolved),
                };
            } else {
                *s = render(s, names, &mut *resolve)?;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                substitute_yaml(item, names, resolve)?;
            }
        }
        Value::Mapping(map) => {
            let entries: Vec<(Value, Value)> = std::mem::take(map).into_iter().collect();
            for (mut k, mut v) in entries {
                if let Value::String(s) = &k {
                    k = Value::String(render(s, names, &mut *resolve)?);
                }
                substitute_yaml(&mut v, names, resolve)?;
                map.insert(k, v);
            }
        }
        Value::Tagged(tagged) => substitute_yaml(&mut tagged.value, names, resolve)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Substitutes into every string of a parsed JSON document, object keys included. Strings stay strings:
/// a JSON template says its types itself.
pub fn substitute_json<E>(
    value: &mut serde_json::Value,
    names: Names,
    resolve: &mut dyn FnMut(&str) -> Result<String, E>,
) -> Result<(), RenderError<E>> {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = render(s, names, &mut *resolve)?,
        Value::Array(items) => {
            for item in items {
                substitute_json(item, names, resolve)?;
            }
        }
        Value::Object(map) => {
            let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            for (k, mut v) in entries {
                let k = render(&k, names, &mut *resolve)?;
                substitute_json(&mut v, names, resolve)?;
                map.insert(k, v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;

    fn vars() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([
            ("env", "staging"),
            ("port", "8080"),
            ("quote", "a\"b: c # d"),
            ("on", "true"),
        ])
    }

    fn lookup(name: &str) -> Result<String, String> {
        vars()
            .get(name)
            .map(|v| (*v).to_owned())
            .ok_or_else(|| format!("unknown `{name}`"))
    }

    /// Input, name rule, and the pieces or the offset of the malformed `${`.
    type PiecesCase = (&'static str, Names, Result<Vec<Piece<'static>>, usize>);

    #[test]
    fn pieces_split_text_literal_dollars_and_references() {
        let table: &[PiecesCase] = &[
            ("plain", Names::Identifier, Ok(vec![Piece::Text("plain")])),
            (
                "${env}",
                Names::Identifier,
                Ok(vec![Piece::Ref { name: "env", offset: 0 }]),
            ),
            (
                "a $$ b $5 ${env}",
                Names::Identifier,
                Ok(vec![
                    Piece::Text("a "),
                    Piece::Dollar,
                    Piece::Text(" b $5 "),
                    Piece::Ref {
                        name: "env",
                        offset: 10,
                    },
                ]),
            ),
            (
                "$${env}",
                Names::Identifier,
                Ok(vec![Piece::Dollar, Piece::Text("{env}")]),
            ),
            ("x ${env", Names::Identifier, Err(2)),
            ("${a.b}", Names::Identifier, Err(0)),
            (
                "${a.b-c}",
                Names::Path,
                Ok(vec![Piece::Ref {
                    name: "a.b-c",
                    offset: 0,
                }]),
            ),
            ("${}", Names::Path, Err(0)),
        ];
        for (input, names, expected) in table {
            let got = pieces(input, *names).map_err(|m| m.offset);
            assert_eq!(&got, expected, "{input}");
        }
    }

    #[test]
    fn scan_locates_references_and_skips_comment_lines() {
        let text = "a: ${env}\n# ${commented}\nb: x ${port} ${oops\n";
        let found = scan(text, Names::Identifier, Some('#'));
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].line, found[0].column, found[0].reference.clone()),
            (1, 4, Ok("env"))
        );
        assert_eq!((found[1].line, found[1].column), (3, 14));
        assert!(found[1].reference.as_ref().unwrap_err().contains("without a closing"));
        let found = scan("# ${commented}", Names::Identifier, None);
        assert_eq!(found[0].reference, Ok("commented"));
    }

    #[test]
    fn render_resolves_each_reference_and_reports_the_first_failure() {
        assert_eq!(
            render("${env}-$$${port}", Names::Identifier, lookup),
            Ok("staging-$8080".to_owned())
        );
        assert_eq!(
            render("${env} ${nope}", Names::Identifier, lookup),
            Err(RenderError::Resolve("unknown `nope`".to_owned()))
        );
        assert!(matches!(
            render("${", Names::Identifier, lookup),
            Err(RenderError::Malformed(_))
        ));
    }

    #[test]
    fn yaml_values_hold_their_structure_and_whole_references_take_their_type() {
        let mut doc: serde_norway::Value =
            serde_norway::from_str("port: ${port}\nname: \"${quote}\"\nlabel: app-${env}\nflag: ${on}\n${env}: key\n")
                .unwrap();
        substitute_yaml(&mut doc, Names::Identifier, &mut lookup).unwrap();
        assert_eq!(doc["port"], serde_norway::Value::from(8080));
        assert_eq!(doc["name"], serde_norway::Value::from("a\"b: c # d"));
        assert_eq!(doc["label"], serde_norway::Value::from("app-staging"));
        assert_eq!(doc["flag"], serde_norway::Value::from(true));
        assert_eq!(doc["staging"], serde_norway::Value::from("key"));
    }

    #[test]
    fn json_values_stay_strings_and_a_quote_cannot_break_out() {
        let mut doc: serde_json::Value =
            serde_json::from_str(r#"{"title": "${quote}", "port": "${port}", "w": [{"q": "x{env:${env}}"}]}"#).unwrap();
        substitute_json(&mut doc, Names::Identifier, &mut lookup).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"title": "a\"b: c # d", "port": "8080", "w": [{"q": "x{env:staging}"}]})
        );
        let mut never = |_: &str| -> Result<String, Infallible> { Ok(String::new()) };
        let mut plain = serde_json::json!({"a": 1, "b": [true, null]});
        substitute_json(&mut plain, Names::Path, &mut never).unwrap();
        assert_eq!(plain, serde_json::json!({"a": 1, "b": [true, null]}));
    }
}
