//! The soak's workload: the seeded webinar log of `crate::generator`, sized by requests rather
//! than registrants (the generator's unit), plus what the soak needs around it: the source
//! secrets ingest checks, the contacts' addresses, and a seeded pick of addresses for KlickTipp
//! to refuse. All four sources deliver (WebinarJam JSON and form bodies, EverWebinar forms,
//! signed Zoom notifications, Standard Webhooks signed generic events), with cancellations and
//! re-registrations.

use crate::generator::{Config, Log, Mix};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::Secret;
use webinar_bridge::domain::EventKind;
use webinar_bridge::sources::{RawRequest, SourceSecrets};

/// The standard mix with more of what stresses convergence: twice the duplicates, more
/// reordering, and more late no-shows (a "Did Not Attend" that an attendance must take back:
/// the log's only untag).
pub fn soak_mix() -> Mix {
    Mix {
        duplicate: 0.2,
        out_of_order: 0.3,
        late_no_show_of_webinarjam_attendees: 0.3,
        everwebinar: 0.15,
        generic: 0.2,
        cancel_of_registrants: 0.15,
        reregister_of_cancelled: 0.5,
        ..Mix::default()
    }
}

/// Registrants in the log used to learn how many requests one registrant makes.
const SAMPLE_REGISTRANTS: usize = 500;

pub struct Workload {
    pub requests: Vec<RawRequest>,
    /// Every contact's address (lower-case).
    pub emails: Vec<String>,
    /// E-mail -> tag names, DESIGN 4 applied to the generator's ground truth.
    pub ground_truth: BTreeMap<String, BTreeSet<String>>,
    pub secrets: SourceSecrets,
    /// The secrets as text, for "never in the logs" checks.
    pub secret_texts: Vec<String>,
    /// Requests per source and event kind (`everwebinar cancelled`, `generic registered`, ...).
    pub requests_by_kind: BTreeMap<String, usize>,
    /// Contacts who registered again after cancelling.
    pub reregistrations: usize,
    /// The generated log itself: requests and the truth behind them.
    pub log: Log,
}

impl Workload {
    /// About `requests` requests (duplicates and out-of-order deliveries included) from `seed`.
    pub fn generate(requests: usize, seed: u64) -> Workload {
        Self::generate_with(requests, seed, soak_mix())
    }

    /// [`Workload::generate`] with another mix (e.g. `genesis_cancellations` on).
    pub fn generate_with(requests: usize, seed: u64, mix: Mix) -> Workload {
        let sample = Log::generate(&Config { seed, registrants: SAMPLE_REGISTRANTS, mix, ..Config::default() });
        let per_registrant = sample.requests.len() as f64 / SAMPLE_REGISTRANTS as f64;
        let registrants = ((requests as f64 / per_registrant).round() as usize).max(1);
        let log = Log::generate(&Config { seed, registrants, mix, ..Config::default() });
        let texts = &log.secrets;
        let secrets = SourceSecrets {
            webinarjam: Some(Secret::new(texts.webinarjam.clone())),
            everwebinar: Some(Secret::new(texts.everwebinar.clone())),
            zoom: Some(Secret::new(texts.zoom.clone())),
            generic: Some(Secret::new(texts.generic.clone())),
        };
        let mut requests_by_kind = BTreeMap::new();
        for request in &log.requests {
            let contact = &log.contacts[request.contact];
            let kind = contact.events[request.event].kind;
            *requests_by_kind.entry(format!("{:?} {}", contact.tool, kind.as_str())).or_insert(0) += 1;
        }
        let reregistrations = log
            .contacts
            .iter()
            .filter(|contact| {
                let kinds: Vec<EventKind> = contact.events.iter().map(|event| event.kind).collect();
                kinds.windows(2).any(|pair| pair == [EventKind::Cancelled, EventKind::Registered])
            })
            .count();
        Workload {
            requests_by_kind,
            reregistrations,
            requests: log.requests.iter().map(|request| request.to_raw()).collect(),
            emails: log.contacts.iter().map(|contact| contact.email.clone()).collect(),
            ground_truth: log.expected_tags(),
            secret_texts: vec![
                texts.webinarjam.clone(),
                texts.zoom.clone(),
                texts.everwebinar.clone(),
                texts.generic.clone(),
            ],
            secrets,
            log,
        }
    }

    /// The workload a soak configuration asks for.
    pub fn for_config(config: &super::SoakConfig) -> Workload {
        let mut mix = Mix { genesis_cancellations: config.genesis_reregistration, ..soak_mix() };
        if !config.reregistrations {
            mix.reregister_of_cancelled = 0.0;
        }
        if config.reconcile {
            let mut workload = Self::generate_with(config.events, config.seed, super::platform::platform_mix(mix));
            workload.ground_truth = super::platform::full_truth(&workload.log);
            return workload;
        }
        Self::generate_with(config.events, config.seed, mix)
    }

    /// `count` addresses picked with `seed`, for KlickTipp to refuse for good.
    pub fn pick_addresses(&self, count: usize, seed: u64) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0F4E_1EC7);
        let mut picked: Vec<String> = self.emails.choose_multiple(&mut rng, count).cloned().collect();
        picked.sort();
        picked
    }
}
