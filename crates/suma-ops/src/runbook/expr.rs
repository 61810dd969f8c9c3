//! References and conditions in runbooks: `${params.reason}`, `${steps.db.outputs.multi_az}`,
//! `${env.url}`, `${run.id}` inside argument strings; a selector reaches into a structured output
//! (`${steps.q.outputs.records[0].email}`, `${steps.health.outputs.json.checks['redis'].status}`,
//! `steps.q.outputs.records[*].id` for each element), as JSONPath does after its `$`; `${steps.restore.outputs.host ||
//! steps.primary.outputs.host}` takes the first alternative that has a value (the output of whichever
//! branch ran, as `||` does in a GitHub Actions expression); and `when:` conditions such as
//! `steps.db.outputs.multi_az == true and params.force != true`. Deliberately small (comparisons joined by
//! `and`/`or`, `not`, no parentheses or arithmetic): a condition an on-call engineer cannot read at a glance
//! does not belong in a runbook.

use std::collections::BTreeMap;

use serde_json::Value;
use suma_core::subst::{self, Names, Piece, RenderError};

use super::selector::selectors;
pub use super::selector::{select, Selector};

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    Param(String),
    /// A step's output, and where inside it when the output is structured (empty: the whole value).
    Output {
        step: String,
        output: String,
        path: Vec<Selector>,
    },
    Env(String),
    Run(String),
}

/// The environment values a runbook may reference as `${env.NAME}`.
pub const ENV_NAMES: &[&str] = &[
    "name",
    "production",
    "url",
    "dr_url",
    "primary_region",
    "dr_region",
    "cluster",
    "service",
    "canary_service",
    "database",
    "replica",
    "database_host_variable",
];

/// The run's own values, `${run.NAME}`.
pub const RUN_NAMES: &[&str] = &["id", "actor", "started_at", "runbook", "stopped_at", "reason"];

/// The run values only handlers (`on_failure`, `on_cancel`) have: the step the run stopped at, and why.
pub const HANDLER_RUN_NAMES: &[&str] = &["stopped_at", "reason"];

impl Ref {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{text}` is not a reference; use `params.NAME`, `steps.ID.outputs.NAME`, `env.NAME` or `run.NAME`")
        };
        if let Some((step, rest)) = text.trim().strip_prefix("steps.").and_then(|r| r.split_once('.')) {
            let rest = rest.strip_prefix("outputs.").ok_or_else(bad)?;
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (output, path) = rest.split_at(end);
            if !is_name(step) || !is_name(output) {
                return Err(bad());
            }
            return Ok(Self::Output {
                step: step.to_owned(),
                output: output.to_owned(),
                path: selectors(path).map_err(|m| format!("`{}`: {m}", text.trim()))?,
            });
        }
        let parts: Vec<&str> = text.trim().split('.').collect();
        match parts.as_slice() {
            ["params", name] if is_name(name) => Ok(Self::Param((*name).to_owned())),
            ["env", name] if ENV_NAMES.contains(name) => Ok(Self::Env((*name).to_owned())),
            ["env", name] => Err(format!(
                "`env.{name}` is not an environment value; known: {}",
                ENV_NAMES.join(", ")
            )),
            ["run", name] if RUN_NAMES.contains(name) => Ok(Self::Run((*name).to_owned())),
            ["run", name] => Err(format!(
                "`run.{name}` is not a run value; known: {}",
                RUN_NAMES.join(", ")
            )),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Param(n) => write!(f, "params.{n}"),
            Self::Output { step, output, path } => {
                write!(f, "steps.{step}.outputs.{output}")?;
                path.iter().try_for_each(|s| write!(f, "{s}"))
            }
            Self::Env(n) => write!(f, "env.{n}"),
            Self::Run(n) => write!(f, "run.{n}"),
        }
    }
}

/// Step ids, parameter and output names: lower-case words joined by `_` or `-`.
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The alternatives of one `${...}`, in order (one when there is no `||`).
fn alternatives(name: &str) -> Result<Vec<Ref>, String> {
    name.split("||").map(Ref::parse).collect()
}

/// Every reference in `text`, each alternative of a `||` included.
pub fn references(text: &str) -> Result<Vec<Ref>, String> {
    let mut found = Vec::new();
    for piece in subst::pieces(text, Names::Path).map_err(|m| format!("{} in `{text}`", m.message))? {
        if let Piece::Ref { name, .. } = piece {
            found.extend(alternatives(name)?);
        }
    }
    Ok(found)
}

/// The values references resolve to during a run.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub params: BTreeMap<String, Value>,
    /// Step id → its outputs.
    pub outputs: BTreeMap<String, BTreeMap<String, Value>>,
    pub env: BTreeMap<String, Value>,
    pub run: BTreeMap<String, Value>,
}

impl Scope {
    pub fn get(&self, reference: &Ref) -> Result<Value, String> {
        let found = match reference {
            Ref::Param(n) => self.params.get(n),
            Ref::Output { step, output, .. } => self.outputs.get(step).and_then(|o| o.get(output)),
            Ref::Env(n) => self.env.get(n),
            Ref::Run(n) => self.run.get(n),
        };
        let value = found.ok_or_else(|| match reference {
            Ref::Output { step, .. } if !self.outputs.contains_key(step) => {
                format!("`{reference}` has no value: step `{step}` did not run (skipped by its `when`?)")
            }
            _ => format!("`{reference}` has no value in this run"),
        })?;
        match reference {
            Ref::Output { path, .. } if !path.is_empty() => {
                select(value, path).map_err(|m| format!("`{reference}` has no value: {m}"))
            }
            _ => Ok(value.clone()),
        }
    }
}

/// A value as text in an argument.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Replaces every `${...}` in `text` (one argument, already parsed from the runbook); `$$` is a `$`.
pub fn interpolate(text: &str, scope: &Scope) -> Result<String, String> {
    let resolve = |name: &str| -> Result<String, String> {
        let mut missing = Vec::new();
        for reference in alternatives(name)? {
            match scope.get(&reference) {
                Ok(value) => return Ok(to_text(&value)),
                Err(e) => missing.push(e),
            }
        }
        Err(missing.join("; "))
    };
    subst::render(text, Names::Path, resolve).map_err(|e| match e {
        RenderError::Malformed(m) => format!("{} in `{text}`", m.message),
        RenderError::Resolve(message) => message,
    })
}

/// `value` (a map or list written in the runbook) with [`interpolate`] applied to each string in it, so
/// a resolved value holding a quote or a brace stays one string and never changes the structure.
pub fn interpolate_value(value: &Value, scope: &Scope) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(interpolate(text, scope)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| interpolate_value(item, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), interpolate_value(item, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Every string in `value`, for validation to check their references.
pub fn strings_in(value: &Value) -> Vec<&str> {
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().flat_map(strings_in).collect(),
        Value::Object(map) => map.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Ref(Ref),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// `x` is truthy (`not x`: falsy).
    Truthy {
        operand: Operand,
        negated: bool,
    },
    Compare {
        left: Operand,
        op: Op,
        right: Operand,
    },
}

/// A parsed `when:` condition: terms joined by `and`, groups joined by `or`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    any_of: Vec<Vec<Term>>,
}

fn operand(text: &str) -> Result<Operand, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a comparison is missing an operand".to_owned());
    }
    if let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        return Ok(Operand::Ref(Ref::parse(inner)?));
    }
    if let Some(inner) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
    {
        return Ok(Operand::Literal(Value::String(inner.to_owned())));
    }
    match text {
        "true" => return Ok(Operand::Literal(Value::Bool(true))),
        "false" => return Ok(Operand::Literal(Value::Bool(false))),
        "null" => return Ok(Operand::Literal(Value::Null)),
        _ => {}
    }
    if let Ok(n) = text.parse::<f64>() {
        return Ok(Operand::Literal(serde_json::json!(n)));
    }
    Ref::parse(text).map(Operand::Ref).map_err(|_| {
        format!("`{text}` is neither a reference (`steps.ID.outputs.NAME`, `params.NAME`) nor a literal (number, true/false, 'text')")
    })
}

fn term(text: &str) -> Result<Term, String> {
    for (symbol, op) in [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if let Some((left, right)) = text.split_once(symbol) {
            return Ok(Term::Compare {
                left: operand(left)?,
                op,
                right: operand(right)?,
            });
        }
    }
    let text = text.trim();
    match text.strip_prefix("not ") {
        Some(rest) => Ok(Term::Truthy {
            operand: operand(rest)?,
            negated: true,
        }),
        None => Ok(Term::Truthy {
            operand: operand(text)?,
            negated: false,
        }),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Numbers compare as numbers (also when one side is a numeric string), the rest as text.
fn compare(left: &Value, op: Op, right: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    let ordering = match (number(left), number(right)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(to_text(left).cmp(&to_text(right))),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering.is_eq(),
        Op::Ne => !ordering.is_eq(),
        Op::Lt => ordering.is_lt(),
        Op::Le => ordering.is_le(),
        Op::Gt => ordering.is_gt(),
        Op::Ge => ordering.is_ge(),
    }
}

impl Condition {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the condition is empty".to_owned());
        }
        let any_of = text
            .split(" or ")
            .map(|group| group.split(" and ").map(term).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { any_of })
    }

    /// Every reference, for validation.
    pub fn references(&self) -> Vec<&Ref> {
        let mut refs = Vec::new();
        for term in self.any_of.iter().flatten() {
            let operands: Vec<&Operand> = match term {
                Term::Truthy { operand, .. } => vec![operand],
                Term::Compare { left, right, .. } => vec![left, right],
            };
            refs.extend(operands.into_iter().filter_map(|o| match o {
                Operand::Ref(r) => Some(r),
                Operand::Literal(_) => None,
            }));
        }
        refs
    }

    pub fn eval(&self, scope: &Scope) -> Result<bool, String> {
        let value = |o: &Operand| -> Result<Value, String> {
            match o {
                Operand::Ref(r) => scope.get(r),
                Operand::Literal(v) => Ok(v.clone()),
            }
        };
        for group in &self.any_of {
            let mut all = true;
            for term in group {
                let holds = match term {
                    Term::Truthy { operand, negated } => truthy(&value(operand)?) != *negated,
                    Term::Compare { left, op, right } => compare(&value(left)?, *op, &value(right)?),
                };
                if !holds {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.params.insert("reason".into(), json!("leak"));
        s.outputs.insert(
            "db".into(),
            BTreeMap::from([("multi_az".into(), json!(true)), ("rows".into(), json!(12))]),
        );
        s.env.insert("url".into(), json!("https://auth.example.com"));
        s
    }

    #[test]
    fn references_are_found_and_checked() {
        assert_eq!(
            references("${env.url}/health?r=${params.reason}").unwrap(),
            vec![Ref::Env("url".into()), Ref::Param("reason".into())]
        );
        assert!(references("${env.colour}")
            .unwrap_err()
            .contains("not an environment value"));
        assert!(references("${steps.db.multi_az}")
            .unwrap_err()
            .contains("steps.ID.outputs.NAME"));
        assert!(references("${params.x").unwrap_err().contains("without a closing"));
    }

    #[test]
    fn interpolation_replaces_values() {
        assert_eq!(
            interpolate(
                "${env.url}/health (${params.reason}, ${steps.db.outputs.rows})",
                &scope()
            )
            .unwrap(),
            "https://auth.example.com/health (leak, 12)"
        );
        assert!(interpolate("${steps.gone.outputs.x}", &scope())
            .unwrap_err()
            .contains("did not run"));
    }

    #[test]
    fn a_map_is_resolved_value_by_value_so_a_quote_stays_inside_its_string() {
        let mut s = scope();
        s.params.insert("reason".into(), json!("say \"hi\", } ]"));
        let input = json!({"Reason": "${params.reason}", "Ids": ["${steps.db.outputs.rows}", 7], "Keep": true});
        let resolved = interpolate_value(&input, &s).unwrap();
        assert_eq!(
            resolved,
            json!({"Reason": "say \"hi\", } ]", "Ids": ["12", 7], "Keep": true})
        );
        assert_eq!(strings_in(&input), ["${steps.db.outputs.rows}", "${params.reason}"]);
        assert!(interpolate_value(&json!({"x": ["${params.nope}"]}), &s).is_err());
    }

    #[test]
    fn the_first_alternative_with_a_value_is_taken() {
        let s = scope();
        let cases = [
            ("${steps.gone.outputs.x || steps.db.outputs.rows}", Ok("12")),
            ("${steps.db.outputs.rows||steps.gone.outputs.x}", Ok("12")),
            ("${params.reason || env.url}", Ok("leak")),
            (
                "${steps.gone.outputs.x || steps.other.outputs.y}",
                Err("step `other` did not run"),
            ),
        ];
        for (text, want) in cases {
            match (interpolate(text, &s), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want) && got.contains("`gone`"), "{text}: {got}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
        assert_eq!(
            references("${steps.a.outputs.x || steps.b.outputs.x}").unwrap().len(),
            2,
            "each alternative is checked when the runbook loads"
        );
        assert!(references("${steps.a.outputs.x || env.colour}").is_err());
    }

    fn structured_scope() -> Scope {
        let mut s = scope();
        s.outputs.insert(
            "q".into(),
            BTreeMap::from([(
                "records".into(),
                json!([
                    {"email": "a@example.com", "n": 3, "tags": ["x", "y"]},
                    {"email": "b@example.com", "n": 7, "tags": []},
                ]),
            )]),
        );
        s.outputs.insert(
            "health".into(),
            BTreeMap::from([(
                "json".into(),
                json!({"checks": {"redis": {"status": "ok"}, "db/primary": {"status": "degraded"}}}),
            )]),
        );
        s
    }

    #[test]
    fn selectors_parse_and_print_as_written() {
        let cases = [
            ("steps.q.outputs.records[0].email", "steps.q.outputs.records[0].email"),
            ("steps.q.outputs.records[-1]", "steps.q.outputs.records[-1]"),
            ("steps.q.outputs.records[*].n", "steps.q.outputs.records[*].n"),
            (
                "steps.health.outputs.json['checks'].redis",
                "steps.health.outputs.json.checks.redis",
            ),
            (
                "steps.health.outputs.json.checks[\"db/primary\"].status",
                "steps.health.outputs.json.checks['db/primary'].status",
            ),
            ("steps.q.outputs.rows", "steps.q.outputs.rows"),
        ];
        for (text, shown) in cases {
            assert_eq!(Ref::parse(text).unwrap().to_string(), shown, "{text}");
        }
        let Ref::Output { path, .. } = Ref::parse("steps.q.outputs.records[2]['a b'][*]").unwrap() else {
            panic!("an output reference")
        };
        assert_eq!(
            path,
            vec![Selector::Index(2), Selector::Key("a b".into()), Selector::Each]
        );
    }

    #[test]
    fn selectors_reach_into_outputs_or_say_where_they_stop() {
        let s = structured_scope();
        let get = |text: &str| s.get(&Ref::parse(text).unwrap());
        let cases: [(&str, Result<Value, &str>); 10] = [
            ("steps.q.outputs.records[0].email", Ok(json!("a@example.com"))),
            ("steps.q.outputs.records[-1].n", Ok(json!(7))),
            (
                "steps.q.outputs.records[*].email",
                Ok(json!(["a@example.com", "b@example.com"])),
            ),
            ("steps.q.outputs.records[*].tags[*]", Ok(json!([["x", "y"], []]))),
            (
                "steps.health.outputs.json.checks['db/primary'].status",
                Ok(json!("degraded")),
            ),
            (
                "steps.q.outputs.records[2]",
                Err("`[2]` is out of range: the list has 2 element(s)"),
            ),
            ("steps.q.outputs.records[-3]", Err("out of range")),
            (
                "steps.q.outputs.records[0].mail",
                Err("`.mail` is not there; the object has keys email, n, tags"),
            ),
            (
                "steps.q.outputs.records[0].email[0]",
                Err("`[0]` cannot apply to a string"),
            ),
            (
                "steps.q.outputs.records[*].tags[0]",
                Err("`[0]` is out of range: the list has 0"),
            ),
        ];
        for (text, want) in cases {
            match (get(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want) && got.contains(text), "{text}: {got}"),
                (got, want) => panic!("{text}: {got:?}, wanted {want:?}"),
            }
        }
        assert_eq!(
            interpolate(
                "first ${steps.q.outputs.records[0].email}, all ${steps.q.outputs.records[*].n}",
                &s
            )
            .unwrap(),
            "first a@example.com, all [3,7]"
        );
        assert_eq!(
            interpolate(
                "${steps.q.outputs.records[5].email || steps.health.outputs.json.checks.redis.status}",
                &s
            )
            .unwrap(),
            "ok",
            "an alternative takes over where a selector leads nowhere"
        );
        let eval = |text: &str| Condition::parse(text).unwrap().eval(&s).unwrap();
        assert!(eval(
            "steps.q.outputs.records[1].n > 5 and steps.health.outputs.json.checks.redis.status == 'ok'"
        ));
        assert!(eval("steps.q.outputs.records[0].tags[*]"));
        assert!(!eval("steps.q.outputs.records[1].tags[*]"), "an empty list is false");
    }

    #[test]
    fn conditions_compare_and_combine() {
        let s = scope();
        let eval = |text: &str| Condition::parse(text).unwrap().eval(&s).unwrap();
        assert!(eval("steps.db.outputs.multi_az == true"));
        assert!(eval("steps.db.outputs.multi_az"));
        assert!(!eval("not steps.db.outputs.multi_az"));
        assert!(eval("steps.db.outputs.rows > 10 and params.reason == 'leak'"));
        assert!(!eval("steps.db.outputs.rows > 20 and params.reason == 'leak'"));
        assert!(eval("steps.db.outputs.rows > 20 or ${params.reason} != \"other\""));
        assert!(Condition::parse("steps.db.outputs.rows >").is_err());
        assert_eq!(
            Condition::parse("params.a == 1 or steps.b.outputs.c")
                .unwrap()
                .references()
                .len(),
            2
        );
    }
}
