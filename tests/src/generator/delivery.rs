//! The delivery order: shortly after each event, some late (after the contact's next event),
//! some twice; then the arrival times of the chosen clock.

use super::rng::SplitMix64;
use super::{Contact, DeliveryClock, Mix};
use chrono::{DateTime, Duration, Utc};

/// One delivery: which event, and when it arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) contact: usize,
    pub(super) event: usize,
    pub(super) received_at: DateTime<Utc>,
}

/// Most a platform takes to send an event that is on time.
const MAX_LATENCY_MS: i64 = 3_000;

pub(super) fn schedule(contacts: &[Contact], mix: &Mix, clock: DeliveryClock, rng: &mut SplitMix64) -> Vec<Slot> {
    // Only an event with a later one can arrive after it, so the share is raised to make
    // `mix.out_of_order` of all events arrive out of order.
    let events: usize = contacts.iter().map(|contact| contact.events.len()).sum();
    let with_successor: usize = contacts.iter().map(|contact| contact.events.len().saturating_sub(1)).sum();
    let late_share =
        if with_successor == 0 { 0.0 } else { (mix.out_of_order * events as f64 / with_successor as f64).min(1.0) };

    // (arrival, contact, event, copy): the tuple order breaks ties deterministically.
    let mut deliveries: Vec<(DateTime<Utc>, usize, usize, u8)> = Vec::new();
    for (contact_index, contact) in contacts.iter().enumerate() {
        for (event_index, event) in contact.events.iter().enumerate() {
            let mut arrival = event.occurred_at + Duration::milliseconds(rng.between(200, MAX_LATENCY_MS));
            if let Some(next) = contact.events.get(event_index + 1)
                && rng.chance(late_share)
            {
                let after_next = next.occurred_at + Duration::milliseconds(MAX_LATENCY_MS);
                arrival = arrival.max(after_next) + Duration::seconds(rng.between(1, 120));
            }
            deliveries.push((arrival, contact_index, event_index, 0));
            if rng.chance(mix.duplicate) {
                deliveries.push((arrival + Duration::seconds(rng.between(1, 600)), contact_index, event_index, 1));
            }
        }
    }
    deliveries.sort();
    deliveries
        .into_iter()
        .enumerate()
        .map(|(position, (arrival, contact, event, _))| Slot {
            contact,
            event,
            received_at: arrive(clock, arrival, position),
        })
        .collect()
}

fn arrive(clock: DeliveryClock, as_happened: DateTime<Utc>, position: usize) -> DateTime<Utc> {
    match clock {
        DeliveryClock::AsHappened => as_happened,
        DeliveryClock::Compressed { start, spacing } => {
            let offset = spacing.saturating_mul(u32::try_from(position).unwrap_or(u32::MAX));
            Duration::from_std(offset)
                .ok()
                .and_then(|offset| start.checked_add_signed(offset))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        }
    }
}
