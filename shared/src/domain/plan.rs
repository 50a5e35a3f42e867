//! The minimal KlickTipp calls that take a contact from what KlickTipp has to what it should
//! have (DESIGN 5). Pure: tag ids are resolved by the caller.

use super::contact::{AppliedView, DesiredContact};
use super::fields::FieldValue;
use std::collections::BTreeMap;

/// `POST /subscriber`: creates or updates the contact, carrying at most one new tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub fields: BTreeMap<String, FieldValue>,
    pub tag: Option<String>,
}

/// Calls in the order they must run: create missing tags, upsert, tag the rest, untag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Tag names the account does not have yet.
    pub create_tags: Vec<String>,
    pub upsert: Option<Upsert>,
    /// New tags beyond the one the upsert carries: one `POST /subscriber/tag`.
    pub tag: Vec<String>,
    /// Tags the bridge set that no longer apply: one `POST /subscriber/untag` each.
    pub untag: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_tags.is_empty() && self.upsert.is_none() && self.tag.is_empty() && self.untag.is_empty()
    }

    /// KlickTipp calls this plan makes (tag creations included).
    pub fn call_count(&self) -> usize {
        self.create_tags.len()
            + usize::from(self.upsert.is_some())
            + usize::from(!self.tag.is_empty())
            + self.untag.len()
    }
}

/// Plans the difference between desired and applied. `tag_exists` says whether the account
/// already has a tag of that name.
pub fn plan(desired: &DesiredContact, applied: &AppliedView, tag_exists: impl Fn(&str) -> bool) -> Plan {
    let mut new_tags: Vec<String> = desired.tags.difference(&applied.tags).cloned().collect();
    let untag: Vec<String> = applied.tags.difference(&desired.tags).cloned().collect();
    let changed_fields: BTreeMap<String, FieldValue> = desired
        .fields
        .iter()
        .filter(|(key, value)| applied.fields.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();

    let create_tags = new_tags.iter().filter(|name| !tag_exists(name)).cloned().collect();
    let upsert = (!applied.known || !changed_fields.is_empty())
        .then(|| Upsert { fields: changed_fields, tag: (!new_tags.is_empty()).then(|| new_tags.remove(0)) });
    Plan { create_tags, upsert, tag: new_tags, untag }
}

impl AppliedView {
    /// What KlickTipp holds once every call of `plan` has succeeded.
    pub fn after(&self, plan: &Plan) -> AppliedView {
        let mut next = self.clone();
        if let Some(upsert) = &plan.upsert {
            next.known = true;
            next.fields.extend(upsert.fields.clone());
            next.tags.extend(upsert.tag.clone());
        }
        next.tags.extend(plan.tag.iter().cloned());
        for name in &plan.untag {
            next.tags.remove(name);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn desired(tags: &[&str], fields: &[(&str, &str)]) -> DesiredContact {
        DesiredContact {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), FieldValue::Text(v.to_string()))).collect(),
        }
    }

    #[test]
    fn a_new_contact_is_one_upsert_carrying_its_tag() {
        let plan = plan(&desired(&["R"], &[("fieldFirstName", "Erika")]), &AppliedView::default(), |_| true);
        assert_eq!(plan.call_count(), 1);
        assert_eq!(plan.upsert.as_ref().and_then(|u| u.tag.as_deref()), Some("R"));
    }

    #[test]
    fn a_known_contact_with_only_new_tags_gets_one_tag_call() {
        let applied = AppliedView { known: true, fields: BTreeMap::new(), tags: BTreeSet::from(["R".to_owned()]) };
        let plan = plan(&desired(&["R", "A", "F"], &[]), &applied, |_| true);
        assert!(plan.upsert.is_none());
        assert_eq!(plan.tag, vec!["A".to_owned(), "F".to_owned()]);
        assert_eq!(plan.call_count(), 1);
    }

    #[test]
    fn dropped_tags_are_untagged_one_by_one_and_missing_tags_created() {
        let applied = AppliedView {
            known: true,
            fields: BTreeMap::new(),
            tags: BTreeSet::from(["R".to_owned(), "N".to_owned()]),
        };
        let plan = plan(&desired(&["R", "A"], &[]), &applied, |name| name != "A");
        assert_eq!(plan.create_tags, vec!["A".to_owned()]);
        assert_eq!(plan.tag, vec!["A".to_owned()]);
        assert_eq!(plan.untag, vec!["N".to_owned()]);
    }

    #[test]
    fn nothing_changed_means_no_call() {
        let want = desired(&["R"], &[("fieldFirstName", "Erika")]);
        let applied = AppliedView { known: true, fields: want.fields.clone(), tags: want.tags.clone() };
        assert!(plan(&want, &applied, |_| true).is_empty());
    }

    #[test]
    fn only_changed_fields_are_sent() {
        let applied = AppliedView {
            known: true,
            fields: BTreeMap::from([("fieldFirstName".to_owned(), FieldValue::Text("Erika".into()))]),
            tags: BTreeSet::new(),
        };
        let plan = plan(&desired(&[], &[("fieldFirstName", "Erika"), ("fieldLastName", "Muster")]), &applied, |_| true);
        let upsert = plan.upsert.expect("a changed field needs an upsert");
        assert_eq!(upsert.fields.keys().collect::<Vec<_>>(), vec!["fieldLastName"]);
    }
}
