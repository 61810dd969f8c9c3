//! Where each key of a YAML document is written, for problems found after parsing (an unknown metric,
//! a step that names a missing action), which carry a key path but no position. The document is read
//! again by `saphyr-parser`'s event stream, whose every event carries its span, so block and flow style
//! (`steps: [{ weight: 10, duration: 5m }]`), quoted keys and comments are all located the same way.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// Where every key path of a document is written, read once for any number of lookups.
pub struct Positions(HashMap<String, (usize, usize)>);

impl Positions {
    pub fn of(text: &str) -> Self {
        Self(positions(text))
    }

    /// The 1-based line and column of `key` (a dotted path; `steps[1]` and `steps.1` alike); the empty
    /// path, the whole document, is its start.
    pub fn at(&self, key: &str) -> Option<(usize, usize)> {
        if key.is_empty() {
            return Some((1, 1));
        }
        self.0.get(&key.replace('[', ".").replace(']', "")).copied()
    }
}

/// 1-based line and column of every key path of `text`'s first document: `lock.table` is where the key
/// `table` is written, `canary.steps.1` where the second item of `steps` begins (for a mapping item,
/// its first key). Empty when the text is not YAML.
fn positions(text: &str) -> HashMap<String, (usize, usize)> {
    let mut found = HashMap::new();
    let mut stack: Vec<Frame> = vec![Frame::Root];
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let at = (span.start.line(), span.start.col() + 1);
        match event {
            Event::DocumentEnd => break,
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key: key @ None }) = stack.last_mut() {
                    let child = join(path, &value);
                    found.entry(child.clone()).or_insert(at);
                    *key = Some(child);
                } else {
                    note_item(&mut stack, &mut found, at);
                    finish_node(&mut stack);
                }
            }
            Event::Alias(_) => {
                note_item(&mut stack, &mut found, at);
                finish_node(&mut stack);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = note_item(&mut stack, &mut found, at);
                stack.push(match event {
                    Event::MappingStart(..) => Frame::Map { path, key: None },
                    _ => Frame::Seq { path, index: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                finish_node(&mut stack);
            }
            _ => {}
        }
    }
    found
}

/// The 1-based line and column of `key` in `text`, for one lookup.
pub fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    Positions::of(text).at(key)
}

/// What the parser is inside of.
enum Frame {
    Root,
    /// A mapping at `path`; `key` is the path of the key read whose value comes next.
    Map {
        path: String,
        key: Option<String>,
    },
    /// A sequence at `path`; `index` is the next item's.
    Seq {
        path: String,
        index: usize,
    },
}

/// The path of the node starting now, noting where a sequence item begins. A key that is itself a
/// mapping or sequence (rare, `? [a, b]: x`) gets a path no problem names.
fn note_item(stack: &mut [Frame], found: &mut HashMap<String, (usize, usize)>, at: (usize, usize)) -> String {
    match stack.last() {
        Some(Frame::Map { key: Some(key), .. }) => key.clone(),
        Some(Frame::Map { path, key: None }) => join(path, "?"),
        Some(Frame::Seq { path, index }) => {
            let item = join(path, &index.to_string());
            found.entry(item.clone()).or_insert(at);
            item
        }
        Some(Frame::Root) | None => String::new(),
    }
}

/// A node (a key's value, a sequence item, or a complex key) is complete: its parent moves on.
fn finish_node(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, path }) => {
            // A complex key is complete: its value comes next, under a path no problem names.
            *key = match key.take() {
                Some(_) => None,
                None => Some(join(path, "?")),
            };
        }
        Some(Frame::Seq { index, .. }) => *index += 1,
        Some(Frame::Root) | None => {}
    }
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nlock:\n  table: t\nenvironments:\n  staging:\n    primary_region: eu-west-1\n    canary:\n      steps:\n        - weight: 10\n          duration: 1m\n        - weight: 5\n          duration: 1m\n    secrets:\n    - id: a\n      kind: random\n    - id: b\n    # trailing comment\n  production:\n    primary_region: eu-west-1\n";

    #[test]
    fn locates_nested_keys_and_sequence_items() {
        assert_eq!(locate(DOC, ""), Some((1, 1)));
        assert_eq!(locate(DOC, "lock.table"), Some((3, 3)));
        assert_eq!(locate(DOC, "environments.staging.primary_region"), Some((6, 5)));
        assert_eq!(
            locate(DOC, "environments.staging.canary.steps.1.weight"),
            Some((11, 11))
        );
        assert_eq!(
            locate(DOC, "environments.staging.canary.steps[0].duration"),
            Some((10, 11))
        );
        assert_eq!(locate(DOC, "environments.staging.canary.steps.1"), Some((11, 11)));
        // Sequences level with their key, as PyYAML writes them.
        assert_eq!(locate(DOC, "environments.staging.secrets.1.id"), Some((16, 7)));
        assert_eq!(locate(DOC, "environments.staging.secrets.0.kind"), Some((15, 7)));
        assert_eq!(locate(DOC, "environments.production.primary_region"), Some((19, 5)));
        assert_eq!(locate(DOC, "environments.qa"), None);
        assert_eq!(locate(DOC, "environments.staging.secrets.2"), None);
    }

    #[test]
    fn locates_flow_style_quoted_keys_and_scalar_items() {
        let doc = "canary:\n  steps: [{ weight: 10, duration: 5m }, {weight: 20}]\n  \"quoted key\": x\nlist:\n  - a\n  - [b, c]\n  - d\nafter: 1\n";
        assert_eq!(locate(doc, "canary.steps.0.duration"), Some((2, 25)));
        assert_eq!(locate(doc, "canary.steps.1.weight"), Some((2, 42)));
        assert_eq!(locate(doc, "canary.quoted key"), Some((3, 3)));
        assert_eq!(locate(doc, "list.0"), Some((5, 5)));
        assert_eq!(locate(doc, "list.1.1"), Some((6, 9)));
        assert_eq!(locate(doc, "list.2"), Some((7, 5)));
        assert_eq!(locate(doc, "after"), Some((8, 1)));
    }

    #[test]
    fn text_that_is_not_yaml_locates_nothing_past_the_error() {
        assert_eq!(locate("a: [1, 2\nb: 3\n", "b"), None);
    }
}
