//! Property tests: the state is a semilattice and the planner reaches a fixed point.

mod common;

use common::{event_for, with_interval};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::domain::{
    AppliedView, ContactRecord, ContactState, Email, EventKind, FieldMap, FieldValue, Settings, WebinarEvent, plan,
};

fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(EventKind::ALL.to_vec())
}

/// A small universe of events over two contacts and two webinars, with names, minutes and
/// intervals, so that collisions (same key, same time) actually happen.
fn arb_event() -> impl Strategy<Value = WebinarEvent> {
    (
        prop::sample::select(vec!["erika@example.com", "max@example.com"]),
        prop::sample::select(vec!["w1", "w2"]),
        arb_kind(),
        0i64..120,
        prop::option::of(prop::sample::select(vec!["Erika", "Max", "", "Eri"])),
        prop::option::of((0i64..60, prop::option::of(0i64..60))),
        prop::option::of(0u32..80),
        prop::sample::select(vec!["Clicked Offer", "Asked Question", "Stayed For Offer"]),
    )
        .prop_map(|(email, webinar, kind, minute, name, interval, minutes, label)| {
            let mut event = event_for(email, webinar, kind, minute);
            event.contact.first_name = name.map(str::to_owned);
            if let Some((from, len)) = interval {
                event = with_interval(event, from, len.map(|l| from + l));
            }
            event.facts.minutes_attended = minutes;
            if kind == EventKind::Engaged {
                event.facts.engagement = Some(label.to_owned());
            }
            event
        })
}

fn fold(events: &[WebinarEvent]) -> BTreeMap<String, ContactRecord> {
    let mut records: BTreeMap<String, ContactRecord> = BTreeMap::new();
    for event in events {
        records
            .entry(event.contact.email.as_str().to_owned())
            .or_insert_with(|| ContactRecord::new(event.contact.email.clone()))
            .apply(event);
    }
    records
}

fn settings() -> Settings {
    Settings {
        field_map: FieldMap::parse_json(
            r#"{"first_name":"fieldFirstName","minutes_attended":"field1","webinar_name":"field2","purchase_amount":"field3"}"#,
        )
        .expect("valid map"),
        ..Settings::default()
    }
}

fn desired_tags(records: &BTreeMap<String, ContactRecord>) -> BTreeMap<String, BTreeSet<String>> {
    records.iter().map(|(email, record)| (email.clone(), record.desired(&settings()).tags)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_and_any_duplication_give_the_same_state(
        events in prop::collection::vec(arb_event(), 0..12),
        shuffle_seed in any::<u64>(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut permuted = events.clone();
        for dup in &duplicates {
            if !events.is_empty() {
                permuted.push(events[dup.index(events.len())].clone());
            }
        }
        // Deterministic Fisher-Yates with the seed: a random permutation.
        let mut seed = shuffle_seed | 1;
        for i in (1..permuted.len()).rev() {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            permuted.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let original = fold(&events);
        let shuffled = fold(&permuted);
        prop_assert_eq!(&original, &shuffled);
        prop_assert_eq!(desired_tags(&original), desired_tags(&shuffled));
        for (email, record) in &original {
            prop_assert_eq!(record.desired(&settings()), shuffled[email].desired(&settings()));
        }
    }

    #[test]
    fn merge_is_idempotent_commutative_and_associative(
        a in prop::collection::vec(arb_event(), 0..5),
        b in prop::collection::vec(arb_event(), 0..5),
        c in prop::collection::vec(arb_event(), 0..5),
    ) {
        let state = |events: &[WebinarEvent]| {
            let mut s = ContactState::default();
            events.iter().for_each(|e| s.apply(e));
            s
        };
        let (sa, sb, sc) = (state(&a), state(&b), state(&c));
        let mut aa = sa.clone(); aa.merge(&sa);
        prop_assert_eq!(&aa, &sa);
        let mut ab = sa.clone(); ab.merge(&sb);
        let mut ba = sb.clone(); ba.merge(&sa);
        prop_assert_eq!(&ab, &ba);
        let mut ab_c = ab.clone(); ab_c.merge(&sc);
        let mut bc = sb.clone(); bc.merge(&sc);
        let mut a_bc = sa.clone(); a_bc.merge(&bc);
        prop_assert_eq!(ab_c, a_bc);
    }

    #[test]
    fn the_planner_applied_to_its_own_result_plans_nothing(
        events in prop::collection::vec(arb_event(), 1..10),
        applied_tags in prop::collection::btree_set(prop::sample::select(vec![
            "[Zoom] [Demo Webinar] Registered", "[Zoom] [Demo Webinar] Did Not Attend", "[Zoom] [Demo Webinar] Cancelled"
        ]).prop_map(str::to_owned), 0..3),
        known in any::<bool>(),
        stale_name in prop::option::of(prop::sample::select(vec!["Erika", "Old"])),
    ) {
        for record in fold(&events).values() {
            let desired = record.desired(&settings());
            let mut applied = AppliedView { known, fields: BTreeMap::new(), tags: applied_tags.clone() };
            if let Some(name) = stale_name {
                applied.fields.insert("fieldFirstName".into(), FieldValue::Text(name.into()));
            }
            let first = plan(&desired, &applied, |_| false);
            let after = applied.after(&first);
            prop_assert!(plan(&desired, &after, |_| true).is_empty());
            prop_assert_eq!(&after.tags, &desired.tags);
            // Minimal: at most one upsert, one tag call, and one untag per dropped tag.
            prop_assert!(first.call_count() - first.create_tags.len() <= 2 + first.untag.len());
            prop_assert!(first.untag.iter().all(|t| applied_tags.contains(t)), "only ever removes tags it set");
        }
    }

    #[test]
    fn engagement_labels_only_grow_and_each_is_a_sticky_tag(
        events in prop::collection::vec(arb_event(), 0..10),
        more in prop::collection::vec(arb_event(), 0..6),
    ) {
        let before = fold(&events);
        let after = fold(&[events.clone(), more].concat());
        for (email, record) in &before {
            let later = &after[email];
            for (key, state) in &record.webinars {
                prop_assert!(state.engagements.is_subset(&later.webinars[key].engagements));
            }
            let tags = later.desired(&settings()).tags;
            for state in later.webinars.values() {
                for label in &state.engagements {
                    prop_assert!(tags.iter().any(|tag| tag.ends_with(&format!("] {label}"))), "{label} has its tag");
                }
            }
        }
    }

    #[test]
    fn emails_never_panic_and_normalize_idempotently(raw in ".{0,80}") {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
        }
    }
}
