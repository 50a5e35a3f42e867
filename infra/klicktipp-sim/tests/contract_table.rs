//! The contract table (tests/contract.json) against the simulator, under the
//! knob settings where KlickTipp's real behaviour is uncertain.

use std::collections::BTreeMap;

use klicktipp_sim::contract::{ContractTable, Credentials, run_table_report};
use klicktipp_sim::{
    DuplicateTagPolicy, Knobs, Language, ListbuildingKey, PartnerAccount, SINGLE_OPTIN_LISTID, SimConfig,
    SubscriberIndexShape, UnknownTagAnswer,
};

const APIKEY: &str = "contract-listbuilding-key";

fn config(knobs: Knobs) -> SimConfig {
    SimConfig {
        partner: Some(PartnerAccount {
            username: "bridge".into(),
            developer_key: "0123456789abcdef".into(),
            customer_key: "customer-key".into(),
        }),
        listbuilding_keys: vec![ListbuildingKey { apikey: APIKEY.into(), listid: 1, tagid: 0 }],
        knobs,
        ..SimConfig::default()
    }
}

async fn run_against_simulator(knobs: Knobs) {
    let config = config(knobs);
    let credentials = Credentials {
        username: config.username.clone(),
        password: config.password.clone(),
        partner: config.partner.clone(),
        vars: BTreeMap::from([
            ("listbuilding_apikey".to_owned(), APIKEY.to_owned()),
            ("single_optin_listid".to_owned(), SINGLE_OPTIN_LISTID.to_string()),
            ("smart_tagid".to_owned(), "900001".to_owned()),
        ]),
    };
    let sim = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("simulator starts");
    assert!(sim.smart_tags().contains_key(&900_001), "the smart tag the table untags exists");
    let table = ContractTable::bundled().expect("tests/contract.json parses");
    let report = run_table_report(&sim.url(), &credentials, &table).await;

    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{} contract failures:\n{}", failures.len(), failures.join("\n"));
    assert!(report.skipped.is_empty(), "skipped: {:?}", report.skipped);
    assert_eq!(report.passed.len(), table.cases.len());
    // The table cleans up after itself, as it must on a real account.
    assert!(sim.contacts().is_empty(), "left behind: {:?}", sim.contacts());
    assert!(sim.tags().is_empty(), "left behind: {:?}", sim.tags());
    sim.shutdown().await;
}

mod sim {
    use super::*;

    #[tokio::test]
    async fn sim_honours_the_contract_table() {
        run_against_simulator(Knobs::default()).await;
    }

    #[tokio::test]
    async fn sim_honours_the_contract_table_with_the_other_open_choices() {
        run_against_simulator(Knobs {
            language: Language::De,
            unknown_tag_answer: UnknownTagAnswer::Error7,
            duplicate_tag_names: DuplicateTagPolicy::Reject,
            empty_maps_as_arrays: true,
            subscriber_index_shape: SubscriberIndexShape::Array,
            ..Knobs::default()
        })
        .await;
    }

    #[tokio::test]
    async fn sim_contract_runner_reports_a_wrong_expectation() {
        let sim = klicktipp_sim::start(SimConfig::default(), "127.0.0.1:0").await.expect("simulator starts");
        let table = ContractTable::from_json(
            r#"{"cases": [
                {"name": "expects the wrong status", "request": {"method": "GET", "path": "/tag", "auth": "session"},
                 "expect": {"status": 201, "shape": "id_map"}},
                {"name": "needs a variable", "request": {"method": "GET", "path": "/tag/${missing}", "auth": "session"},
                 "expect": {"status": 200, "shape": "tag_object"}},
                {"name": "passes", "request": {"method": "GET", "path": "/tag", "auth": "none"},
                 "expect": {"status": 403, "shape": "array_of_strings"}}
            ]}"#,
        )
        .expect("table parses");
        let credentials =
            Credentials { username: "bridge".into(), password: "sim-password".into(), ..Credentials::default() };
        let report = run_table_report(&sim.url(), &credentials, &table).await;
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert_eq!(report.failures[0].case, "expects the wrong status");
        assert!(report.failures[0].message.contains("status 201 expected"), "{}", report.failures[0].message);
        assert_eq!(report.skipped, vec![("needs a variable".to_owned(), "needs variable missing".to_owned())]);
        assert_eq!(report.passed, vec!["passes".to_owned()]);
    }
}
