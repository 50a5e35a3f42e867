//! The same contract table against a real KlickTipp test account, only when
//! `KLICKTIPP_BASE_URL` (+ `KLICKTIPP_USERNAME`/`KLICKTIPP_PASSWORD`, optional
//! `KLICKTIPP_DEVELOPER_KEY`/`KLICKTIPP_CUSTOMER_KEY`, `KLICKTIPP_LISTBUILDING_APIKEY`,
//! `KLICKTIPP_SINGLE_OPTIN_LISTID`, `KLICKTIPP_SMART_TAGID`, `KLICKTIPP_TEST_EMAIL_DOMAIN`)
//! is set. The table creates and deletes its own contacts and tags.

use klicktipp_sim::contract::{ContractTable, Credentials, run_table_report};

mod sim {
    use super::*;

    #[tokio::test]
    async fn sim_contract_table_against_real_klicktipp() {
        let Some((base_url, credentials)) = Credentials::from_env() else {
            println!("skipped: KLICKTIPP_BASE_URL not set");
            return;
        };
        let table = ContractTable::bundled().expect("tests/contract.json parses");
        let report = run_table_report(&base_url, &credentials, &table).await;
        for (case, why) in &report.skipped {
            println!("skipped case {case:?}: {why}");
        }
        let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
        assert!(failures.is_empty(), "{} contract failures:\n{}", failures.len(), failures.join("\n"));
    }
}
