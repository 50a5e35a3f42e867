//! The soak's workload: the seeded webinar log of `crate::generator`, sized by requests rather
//! than registrants (the generator's unit), plus what the soak needs around it: the source
//! secrets ingest checks, the contacts' addresses, and a seeded pick of addresses for KlickTipp
//! to refuse.

use crate::generator::{Config, Log, Mix};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use std::collections::{BTreeMap, BTreeSet};
use webinar_bridge::Secret;
use webinar_bridge::sources::{RawRequest, SourceSecrets};

/// The standard mix with more of what stresses convergence: twice the duplicates, more
/// reordering, and more late no-shows (a "Did Not Attend" that an attendance must take back:
/// the log's only untag).
pub fn soak_mix() -> Mix {
    Mix { duplicate: 0.2, out_of_order: 0.3, late_no_show_of_webinarjam_attendees: 0.3, ..Mix::default() }
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
}

impl Workload {
    /// About `requests` requests (duplicates and out-of-order deliveries included) from `seed`.
    pub fn generate(requests: usize, seed: u64) -> Workload {
        let sample =
            Log::generate(&Config { seed, registrants: SAMPLE_REGISTRANTS, mix: soak_mix(), ..Config::default() });
        let per_registrant = sample.requests.len() as f64 / SAMPLE_REGISTRANTS as f64;
        let registrants = ((requests as f64 / per_registrant).round() as usize).max(1);
        let log = Log::generate(&Config { seed, registrants, mix: soak_mix(), ..Config::default() });
        let secrets = SourceSecrets {
            webinarjam: Some(Secret::new(log.secrets.webinarjam.clone())),
            zoom: Some(Secret::new(log.secrets.zoom.clone())),
            ..SourceSecrets::default()
        };
        Workload {
            requests: log.requests.iter().map(|request| request.to_raw()).collect(),
            emails: log.contacts.iter().map(|contact| contact.email.clone()).collect(),
            ground_truth: log.expected_tags(),
            secret_texts: vec![log.secrets.webinarjam.clone(), log.secrets.zoom.clone()],
            secrets,
        }
    }

    /// `count` addresses picked with `seed`, for KlickTipp to refuse for good.
    pub fn pick_addresses(&self, count: usize, seed: u64) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0F4E_1EC7);
        let mut picked: Vec<String> = self.emails.choose_multiple(&mut rng, count).cloned().collect();
        picked.sort();
        picked
    }
}
