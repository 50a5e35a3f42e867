//! The KlickTipp endpoints the bridge uses, one method each (reference section 2).

use super::client::KlickTippClient;
use super::error::KlickTippError;
use super::model::{FieldValue, Subscriber, UpsertSubscriber};
use super::wire;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The operation name of `POST /subscriber`, as errors report it.
pub const UPSERT_SUBSCRIBER: &str = "upsert subscriber";

impl KlickTippClient {
    /// `POST /subscriber`: create the contact, or update the one with this address.
    pub async fn upsert_subscriber(&self, request: &UpsertSubscriber) -> Result<Subscriber, KlickTippError> {
        let call = self
            .call(UPSERT_SUBSCRIBER, Method::POST, &["subscriber"])
            .with_body(request.to_body())
            .about(&request.email);
        self.managed(&call, wire::contact).await
    }

    /// `POST /subscriber/search`: the contact id for an address; `None` when there is none (404).
    pub async fn search_subscriber(&self, email: &str) -> Result<Option<String>, KlickTippError> {
        let call = self
            .call("search subscriber", Method::POST, &["subscriber", "search"])
            .with_body(json!({"email": email}))
            .about(email);
        let call = &call;
        self.with_retries(call, |_| async move {
            match self.management(call).await {
                Ok(reply) => wire::single_text(call.operation, &reply).map(Some),
                Err(KlickTippError::Rejected { status: 404, .. }) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// `GET /subscriber/{id}`: a contact by numeric id or contact key.
    pub async fn get_subscriber(&self, id: &str) -> Result<Subscriber, KlickTippError> {
        let call = self.call("get subscriber", Method::GET, &["subscriber", id]);
        self.managed(&call, wire::contact).await
    }

    /// `DELETE /subscriber/{id}`: delete the contact (erasure). `false` when KlickTipp has no
    /// contact with this id (404): already gone.
    pub async fn delete_subscriber(&self, id: &str) -> Result<bool, KlickTippError> {
        let call = self.call("delete subscriber", Method::DELETE, &["subscriber", id]);
        let call = &call;
        self.with_retries(call, |_| async move {
            match self.management(call).await {
                Ok(reply) => wire::confirmed(call.operation, &reply).map(|()| true),
                Err(KlickTippError::Rejected { status: 404, .. }) => Ok(false),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// `POST /subscriber/tag`: apply manual tags (idempotent). No call for an empty list.
    pub async fn tag(&self, email: &str, tag_ids: &[u64]) -> Result<(), KlickTippError> {
        if tag_ids.is_empty() {
            return Ok(());
        }
        let call = self
            .call("tag subscriber", Method::POST, &["subscriber", "tag"])
            .with_body(json!({"email": email, "tagids": tag_ids}))
            .about(email);
        self.managed(&call, wire::confirmed).await
    }

    /// `POST /subscriber/untag`: remove one manual tag (idempotent).
    pub async fn untag(&self, email: &str, tag_id: u64) -> Result<(), KlickTippError> {
        let call = self
            .call("untag subscriber", Method::POST, &["subscriber", "untag"])
            .with_body(json!({"email": email, "tagid": tag_id}))
            .about(email);
        self.managed(&call, wire::confirmed).await
    }

    /// `GET /tag`: manual tags by id.
    pub async fn list_tags(&self) -> Result<BTreeMap<u64, String>, KlickTippError> {
        let call = self.call("list tags", Method::GET, &["tag"]);
        self.managed(&call, wire::id_map).await
    }

    /// `POST /tag`: create a manual tag and return its id.
    ///
    /// Not idempotent, so a retry after an answer that got lost (timeout, 5xx) first looks the
    /// name up: if the lost attempt did create the tag, its id is returned instead of a twin.
    pub async fn create_tag(&self, name: &str, text: Option<&str>) -> Result<u64, KlickTippError> {
        let mut body = Map::from_iter([("name".to_owned(), json!(name))]);
        if let Some(text) = text {
            body.insert("text".into(), json!(text));
        }
        let call = self.call("create tag", Method::POST, &["tag"]).with_body(Value::Object(body));
        let lookup = self.call("create tag (look up)", Method::GET, &["tag"]);
        let (call, lookup) = (&call, &lookup);
        self.with_retries(call, |attempt| async move {
            if attempt > 1 {
                let tags = wire::id_map(lookup.operation, &self.management(lookup).await?)?;
                if let Some((id, _)) = tags.iter().find(|(_, existing)| existing.as_str() == name) {
                    return Ok(*id);
                }
            }
            wire::single_id(call.operation, &self.management(call).await?)
        })
        .await
    }

    /// `GET /field`: data-field key to label.
    pub async fn list_fields(&self) -> Result<BTreeMap<String, String>, KlickTippError> {
        let call = self.call("list fields", Method::GET, &["field"]);
        self.managed(&call, wire::string_map).await
    }

    /// `GET /list`: opt-in processes by id; the one named `""` is the default double opt-in.
    pub async fn list_optins(&self) -> Result<BTreeMap<u64, String>, KlickTippError> {
        let call = self.call("list opt-in processes", Method::GET, &["list"]);
        self.managed(&call, wire::id_map).await
    }

    /// Listbuilding `POST /subscriber/signin`: create or update the contact under the key's
    /// opt-in process and tag; returns the redirect URL (pending or thank-you page).
    pub async fn signin(&self, email: &str, fields: &BTreeMap<String, FieldValue>) -> Result<String, KlickTippError> {
        let apikey = self.listbuilding_apikey()?;
        let mut body =
            Map::from_iter([("apikey".to_owned(), json!(apikey.expose())), ("email".to_owned(), json!(email))]);
        if !fields.is_empty() {
            body.insert("fields".into(), json!(fields));
        }
        let call =
            self.call("signin", Method::POST, &["subscriber", "signin"]).with_body(Value::Object(body)).about(email);
        let call = &call;
        self.with_retries(call, |_| async move { wire::single_text(call.operation, &self.listbuilding(call).await?) })
            .await
    }

    /// `POST /account/logout`: close and forget the session. A no-op without one (partner or
    /// listbuilding credentials, or never logged in).
    pub async fn logout(&self) -> Result<(), KlickTippError> {
        let call = self.call("logout", Method::POST, &["account", "logout"]);
        self.end_session(&call).await
    }
}
