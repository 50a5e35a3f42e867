//! The minimal KlickTipp calls that take a contact from what KlickTipp has to what it should
//! have (DESIGN 5). Pure: tag ids are resolved by the caller.

use super::contact::{AppliedView, DesiredContact};
use super::fields::FieldValue;
use std::collections::{BTreeMap, BTreeSet};

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

/// Where a stored applied view may not match KlickTipp: the tags and data fields on which the
/// stored desired view and the applied view disagree.
///
/// The consumer writes the desired state ahead of its KlickTipp calls and the applied view only
/// after them, so after a crash in between (or a call that failed or timed out, possibly after
/// KlickTipp acted on it) each disagreement may have been acted on or not: a tag in the desired
/// view only may be set, a tag in the applied view only may be removed, a field may hold either
/// value. Empty after every fully applied plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unconfirmed {
    pub tags: BTreeSet<String>,
    /// Field keys whose desired value the applied view does not confirm.
    pub fields: BTreeSet<String>,
}

impl Unconfirmed {
    pub fn between(desired: &DesiredContact, applied: &AppliedView) -> Self {
        let tags = desired.tags.symmetric_difference(&applied.tags).cloned().collect();
        let fields = desired
            .fields
            .iter()
            .filter(|(key, value)| applied.fields.get(*key) != Some(*value))
            .map(|(key, _)| key.clone())
            .collect();
        Unconfirmed { tags, fields }
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.fields.is_empty()
    }
}

impl AppliedView {
    /// Forgets what `unconfirmed` puts in doubt and `desired` wants, so the plan sets it again:
    /// a tag an interrupted attempt may have removed, a field it may have overwritten. (Setting
    /// a tag or a value KlickTipp already has is harmless; trusting a stale view is not.)
    pub fn doubt(&mut self, unconfirmed: &Unconfirmed, desired: &DesiredContact) {
        self.tags.retain(|name| !(unconfirmed.tags.contains(name) && desired.tags.contains(name)));
        self.fields.retain(|key, _| !(unconfirmed.fields.contains(key) && desired.fields.contains_key(key)));
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

    #[test]
    fn an_interrupted_untag_is_set_again_when_wanted_once_more() {
        let registered = desired(&["R"], &[("fieldWebinar", "A")]);
        let applied = AppliedView { known: true, fields: registered.fields.clone(), tags: registered.tags.clone() };
        assert!(Unconfirmed::between(&registered, &applied).is_empty(), "a fully applied view is confirmed");

        // The cancellation was written ahead (wants C and webinar B), then the process crashed
        // after its calls: R may be gone, C may be set, the field may hold B.
        let cancelled = desired(&["C"], &[("fieldWebinar", "B")]);
        let unconfirmed = Unconfirmed::between(&cancelled, &applied);
        assert_eq!(unconfirmed.tags, BTreeSet::from(["C".to_owned(), "R".to_owned()]));
        assert_eq!(unconfirmed.fields, BTreeSet::from(["fieldWebinar".to_owned()]));

        // Registered again, for webinar A: the stale view would plan nothing.
        let mut doubted = applied.clone();
        assert!(plan(&registered, &doubted, |_| true).is_empty());
        doubted.doubt(&unconfirmed, &registered);
        let again = plan(&registered, &doubted, |_| true);
        let upsert = again.upsert.expect("the field is sent again");
        assert_eq!(upsert.fields.keys().collect::<Vec<_>>(), vec!["fieldWebinar"]);
        assert_eq!(upsert.tag.as_deref(), Some("R"), "and R is set again");
        assert!(again.untag.is_empty(), "C is not in the applied view: the consumer untags it as a stray");
    }

    #[test]
    fn doubt_keeps_what_is_no_longer_wanted_so_the_plan_removes_it() {
        let applied = AppliedView {
            known: true,
            fields: BTreeMap::new(),
            tags: BTreeSet::from(["R".to_owned(), "N".to_owned()]),
        };
        let want = desired(&["R"], &[]);
        let unconfirmed = Unconfirmed { tags: BTreeSet::from(["N".to_owned()]), fields: BTreeSet::new() };
        let mut doubted = applied.clone();
        doubted.doubt(&unconfirmed, &want);
        assert_eq!(doubted, applied, "N is still removed by the plan; R was never in doubt");
        assert_eq!(plan(&want, &doubted, |_| true).untag, vec!["N".to_owned()]);
    }
}
