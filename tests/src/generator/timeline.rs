//! What happens to each registrant, and when: the ground truth before any delivery.

use super::rng::SplitMix64;
use super::{Contact, LogicalEvent, Mix, Span, Tool, Webinar};
use chrono::{DateTime, Duration, Utc};
use webinar_bridge::domain::EventKind;

/// Display name and the ASCII form used in the e-mail address.
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Erika", "erika"),
    ("Jürgen", "juergen"),
    ("Anna", "anna"),
    ("Mehmet", "mehmet"),
    ("Sophie", "sophie"),
    ("Lukas", "lukas"),
    ("Zoë", "zoe"),
    ("Henrik", "henrik"),
    ("Mia", "mia"),
    ("Paul", "paul"),
    ("Chloé", "chloe"),
    ("Noah", "noah"),
];
const LAST_NAMES: &[(&str, &str)] = &[
    ("Muster", "muster"),
    ("Müller", "mueller"),
    ("Schmidt", "schmidt"),
    ("Yılmaz", "yilmaz"),
    ("Weber", "weber"),
    ("O'Brien", "obrien"),
    ("Fischer", "fischer"),
    ("Nguyen", "nguyen"),
    ("Becker", "becker"),
    ("García", "garcia"),
];
/// Offer prices in cents.
const PRICES: &[i64] = &[4_900, 9_700, 19_700, 49_700];

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const WEBINAR_SECONDS: i64 = HOUR;

/// One webinar per tool, all starting at `start` and lasting an hour.
pub(super) fn webinars(start: DateTime<Utc>) -> Vec<Webinar> {
    vec![
        Webinar {
            tool: Tool::WebinarJam,
            id: "123".to_owned(),
            name: "Email Marketing Masterclass".to_owned(),
            starts_at: start,
            duration_minutes: None,
            timezone: "Europe/Berlin".to_owned(),
        },
        Webinar {
            tool: Tool::Zoom,
            id: "85012345678".to_owned(),
            name: "Product Demo".to_owned(),
            starts_at: start,
            duration_minutes: Some(60),
            timezone: "Europe/Berlin".to_owned(),
        },
        Webinar {
            tool: Tool::EverWebinar,
            id: "456".to_owned(),
            name: "Evergreen Funnel Class".to_owned(),
            starts_at: start,
            duration_minutes: None,
            timezone: "Europe/Berlin".to_owned(),
        },
        Webinar {
            tool: Tool::Generic,
            id: "ls-evt-789".to_owned(),
            name: "Launch Q&A".to_owned(),
            starts_at: start,
            duration_minutes: Some(60),
            timezone: "Europe/Berlin".to_owned(),
        },
    ]
}

/// A draw only when the share is positive, so a mix without a feature gives the same log as
/// before the feature existed.
fn draw(rng: &mut SplitMix64, probability: f64) -> bool {
    probability > 0.0 && rng.chance(probability)
}

/// EverWebinar and generic first (when the mix has them), then WebinarJam or Zoom evenly.
fn pick_tool(mix: &Mix, rng: &mut SplitMix64) -> Tool {
    if mix.everwebinar + mix.generic > 0.0 {
        let roll = rng.unit();
        if roll < mix.everwebinar {
            return Tool::EverWebinar;
        }
        if roll < mix.everwebinar + mix.generic {
            return Tool::Generic;
        }
    }
    if rng.chance(0.5) { Tool::WebinarJam } else { Tool::Zoom }
}

fn at(start: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    start + Duration::seconds(seconds)
}

fn event(kind: EventKind, occurred_at: DateTime<Utc>) -> LogicalEvent {
    LogicalEvent { kind, occurred_at, interval: None, minutes: None, amount_cents: None, deliveries: Vec::new() }
}

pub(super) fn contact(index: usize, webinars: &[Webinar], mix: &Mix, rng: &mut SplitMix64) -> Contact {
    let tool = pick_tool(mix, rng);
    let webinar = webinars.iter().position(|webinar| webinar.tool == tool).unwrap_or(0);
    let start = webinars[webinar].starts_at;
    let (first_name, first_slug) = *rng.pick(FIRST_NAMES);
    let (last_name, last_slug) = *rng.pick(LAST_NAMES);
    let registered_before = rng.between(HOUR, 7 * DAY);
    let mut events = vec![event(EventKind::Registered, at(start, -registered_before))];
    let may_cancel = !tool.is_genesis() || mix.genesis_cancellations;
    let stays = if may_cancel && draw(rng, mix.cancel_of_registrants) {
        // Cancelled between registering and the webinar; maybe registered again before it.
        let cancelled_before = rng.between(registered_before / 4, registered_before / 2);
        events.push(event(EventKind::Cancelled, at(start, -cancelled_before)));
        let again = draw(rng, mix.reregister_of_cancelled);
        if again {
            events.push(event(EventKind::Registered, at(start, -rng.between(MINUTE, cancelled_before / 2))));
        }
        again
    } else {
        true
    };
    if stays {
        let attends = rng.chance(mix.attend);
        match tool {
            Tool::WebinarJam | Tool::EverWebinar | Tool::Generic => {
                events.extend(webinarjam_events(start, attends, mix, rng))
            }
            Tool::Zoom if attends => events.extend(zoom_attendance(start, mix, rng)),
            Tool::Zoom => {}
        }
    }
    events.sort_by_key(|event| event.occurred_at);
    Contact {
        email: format!("{first_slug}.{last_slug}.{index:05}@example.com"),
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
        tool,
        webinar,
        events,
    }
}

/// Live attendance or a no-show, a late no-show for some attendees, replay and purchase.
fn webinarjam_events(start: DateTime<Utc>, attends: bool, mix: &Mix, rng: &mut SplitMix64) -> Vec<LogicalEvent> {
    let mut events = Vec::new();
    // "Negative" triggers fire after the session ends.
    let after_the_end = |rng: &mut SplitMix64| at(start, WEBINAR_SECONDS + rng.between(10 * MINUTE, HOUR));
    if attends {
        if rng.chance(mix.fully_of_attendees) {
            events.push(event(EventKind::FullyAttended, at(start, WEBINAR_SECONDS - rng.between(0, 5 * MINUTE))));
        } else {
            let mut attended = event(EventKind::Attended, at(start, rng.between(MINUTE, 15 * MINUTE)));
            attended.minutes = Some(rng.between(5, 40) as u32);
            events.push(attended);
        }
        if rng.chance(mix.late_no_show_of_webinarjam_attendees) {
            events.push(event(EventKind::NoShow, after_the_end(rng)));
        }
    } else {
        events.push(event(EventKind::NoShow, after_the_end(rng)));
    }
    if rng.chance(mix.replay_of_webinarjam) {
        events.push(event(EventKind::ReplayWatched, at(start, rng.between(DAY, 3 * DAY))));
    }
    if rng.chance(mix.purchase_of_webinarjam) {
        let mut purchased = event(EventKind::Purchased, at(start, rng.between(40 * MINUTE, 3 * DAY)));
        purchased.amount_cents = Some(*rng.pick(PRICES));
        events.push(purchased);
    }
    events
}

/// Joins and leaves. Full attendance totals at least 52 of the 60 minutes, partial at most 36,
/// so no contact sits near the 80% threshold.
fn zoom_attendance(start: DateTime<Utc>, mix: &Mix, rng: &mut SplitMix64) -> Vec<LogicalEvent> {
    let fully = rng.chance(mix.fully_of_attendees);
    let rejoins = rng.chance(mix.rejoin_of_zoom_attendees);
    let spans: Vec<(i64, i64)> = match (fully, rejoins) {
        (true, false) => {
            vec![(rng.between(0, 5 * MINUTE), WEBINAR_SECONDS + rng.between(0, 10 * MINUTE))]
        }
        (true, true) => {
            let join = rng.between(0, 5 * MINUTE);
            let leave = join + rng.between(10 * MINUTE, 30 * MINUTE);
            let rejoin = leave + rng.between(30, 3 * MINUTE);
            vec![(join, leave), (rejoin, WEBINAR_SECONDS + rng.between(0, 10 * MINUTE))]
        }
        (false, false) => {
            let join = rng.between(MINUTE, 20 * MINUTE);
            vec![(join, join + rng.between(5 * MINUTE, 35 * MINUTE))]
        }
        (false, true) => {
            let join = rng.between(MINUTE, 15 * MINUTE);
            let leave = join + rng.between(5 * MINUTE, 18 * MINUTE);
            let rejoin = leave + rng.between(MINUTE, 10 * MINUTE);
            vec![(join, leave), (rejoin, rejoin + rng.between(5 * MINUTE, 18 * MINUTE))]
        }
    };
    spans
        .into_iter()
        .flat_map(|(join, leave)| {
            let (join, leave) = (at(start, join), at(start, leave));
            let mut joined = event(EventKind::Attended, join);
            joined.interval = Some(Span { start: join, end: None });
            let mut left = event(EventKind::Attended, leave);
            left.interval = Some(Span { start: join, end: Some(leave) });
            [joined, left]
        })
        .collect()
}
