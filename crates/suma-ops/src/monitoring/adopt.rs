//! `suma monitors import`: adopting the monitors that exist in Datadog under a template's name without
//! suma's identity (a plan's conflicts), so that from then on `apply` keeps them in line instead of
//! refusing to touch them. Adopting one is an update of that monitor: the template's body, which carries
//! the managed-by, environment and template tags, written over it; its id, history and links are kept.
//! Never adopted: a monitor that is suma's in another environment, or one of several sharing the name
//! (which one is meant is a person's call).

use serde_json::Value;

use super::{environment_tag_among, field_changes, Action, Desired, PlanItem, Remote};

/// One item per template whose name a monitor without suma's identity holds and no managed one does:
/// `adopt` (that monitor's id, the fields the template changes) or, when it cannot be adopted, `conflict`
/// with the reason. Templates with a managed monitor, or none at all, are `apply`'s and not listed.
pub fn adoptions(desired: &[Desired], remote: &[Remote]) -> Vec<PlanItem> {
    let mut items = Vec::new();
    for d in desired {
        let ours = remote.iter().any(|r| r.managed && d.claims(r));
        let strangers: Vec<&Remote> = remote.iter().filter(|r| !r.managed && r.name == d.name).collect();
        if ours || strangers.is_empty() {
            continue;
        }
        let mut item = PlanItem {
            kind: d.kind,
            name: d.name.clone(),
            action: Action::Conflict,
            id: None,
            file: Some(d.file.clone()),
            changes: Vec::new(),
            note: None,
            body: None,
        };
        let elsewhere = |r: &Remote| {
            let tags = r.body["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            environment_tag_among(tags).map(str::to_owned)
        };
        match strangers.as_slice() {
            [one] => match elsewhere(one) {
                Some(tag) => {
                    item.id = Some(one.id.clone());
                    item.note = Some(format!(
                        "#{} is suma's in another environment (`{tag}`): not adopted\nhint: fix that environment's templates instead",
                        one.id
                    ));
                }
                None => {
                    item.action = Action::Adopt;
                    item.id = Some(one.id.clone());
                    item.changes = field_changes(&d.body, &one.body);
                    item.body = Some(d.body.clone());
                    item.note = Some(format!(
                        "#{} becomes suma's: the template's body written over it, its id and history kept",
                        one.id
                    ));
                }
            },
            several => {
                item.note = Some(format!(
                    "{} monitors share this name without suma's identity: none adopted\nhint: delete or rename all but the one to adopt, then import again",
                    several.len()
                ));
            }
        }
        items.push(item);
    }
    items
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Kind;
    use super::*;

    fn desired(name: &str) -> Desired {
        Desired {
            kind: Kind::Monitor,
            name: name.to_owned(),
            file: format!("{name}.yaml"),
            key: name.to_owned(),
            body: json!({"name": name, "query": "q > 1", "tags": ["managed-by:suma", "suma-env:staging"]}),
        }
    }

    fn remote(id: &str, name: &str, managed: bool, tags: &[&str]) -> Remote {
        Remote {
            id: id.to_owned(),
            name: name.to_owned(),
            managed,
            template: None,
            body: json!({"name": name, "query": "q > 1", "tags": tags}),
        }
    }

    #[test]
    fn a_lone_stranger_is_adopted_and_everything_else_is_said_why_not() {
        let want = [
            desired("lone"),
            desired("ours"),
            desired("twice"),
            desired("other-env"),
            desired("none"),
        ];
        let have = [
            remote("1", "lone", false, &["team:x"]),
            remote("2", "ours", true, &["managed-by:suma", "suma-env:staging"]),
            remote("3", "ours", false, &[]),
            remote("4", "twice", false, &[]),
            remote("5", "twice", false, &[]),
            remote("6", "other-env", false, &["managed-by:suma", "suma-env:production"]),
        ];
        let items = adoptions(&want, &have);
        let got: Vec<(&str, Action, Option<&str>)> = items
            .iter()
            .map(|i| (i.name.as_str(), i.action, i.id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("lone", Action::Adopt, Some("1")),
                ("twice", Action::Conflict, None),
                ("other-env", Action::Conflict, Some("6")),
            ]
        );
        assert_eq!(items[0].changes[0].path, "tags", "the adoption stamps suma's identity");
        assert!(items[1].note.as_deref().unwrap().contains("2 monitors share this name"));
        assert!(items[2].note.as_deref().unwrap().contains("`suma-env:production`"));
    }
}
