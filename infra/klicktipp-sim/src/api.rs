//! The Management and Listbuilding endpoints (reference section 8), as pure
//! functions of the state and one parsed request.

use serde_json::{Value, json};

use crate::auth::new_session_id;
use crate::config::{DEFAULT_DOUBLE_OPTIN_LISTID, PENDING_URL, THANKYOU_URL};
use crate::contacts::{Upsert, UpsertRefusal};
use crate::fields::{FieldViolation, is_valid_email, normalize_sms_number, validate_fields};
use crate::knobs::SubscriberIndexShape;
use crate::messages::{Msg, text};
use crate::render::{contact_object, id_map};
use crate::reply::Reply;
use crate::routes::Endpoint;
use crate::state::{ContactStatus, Session, SimState};

/// Who is calling, as far as the request shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Session(String),
    Partner,
    Anonymous,
}

pub(crate) struct Call<'a> {
    pub endpoint: Endpoint,
    pub id: Option<&'a str>,
    /// `Value::Null` for an empty body.
    pub body: &'a Value,
    pub caller: Caller,
    pub now_unix: u64,
    pub now: std::time::Instant,
    /// The request came over TLS (`X-Forwarded-Proto: https` from a proxy in front).
    pub https: bool,
}

/// Early exits carry the error reply.
type Outcome = Result<Reply, Reply>;

pub(crate) fn handle(state: &mut SimState, call: &Call) -> Reply {
    let outcome = match call.endpoint {
        Endpoint::Login => login(state, call),
        Endpoint::Logout => logout(state, call),
        Endpoint::SubscriberCreate => create_subscriber(state, call),
        Endpoint::Signin => signin(state, call),
        Endpoint::Signout => signout(state, call),
        Endpoint::Signoff => signoff(state, call),
        Endpoint::Search => search(state, call),
        Endpoint::Tag => tag(state, call),
        Endpoint::Untag => untag(state, call),
        Endpoint::Unsubscribe => unsubscribe(state, call),
        Endpoint::Tagged => tagged(state, call),
        Endpoint::SubscriberIndex => subscriber_index(state, call),
        Endpoint::SubscriberGet => get_subscriber(state, call),
        Endpoint::SubscriberUpdate => update_subscriber(state, call),
        Endpoint::SubscriberDelete => delete_subscriber(state, call),
        Endpoint::ListIndex => Ok(list_index(state)),
        Endpoint::ListGet => list_get(state, call),
        Endpoint::ListRedirect => list_redirect(state, call),
        Endpoint::TagIndex => Ok(tag_index(state)),
        Endpoint::TagGet => tag_get(state, call),
        Endpoint::TagCreate => tag_create(state, call),
        Endpoint::TagUpdate => tag_update(state, call),
        Endpoint::TagDelete => tag_delete(state, call),
        Endpoint::FieldIndex => Ok(field_index(state)),
        Endpoint::FieldGet => field_get(state, call),
    };
    outcome.unwrap_or_else(|reply| reply)
}

// --- arguments ------------------------------------------------------------------

fn arg<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|value| !value.is_null())
}

/// A trimmed, non-empty string (numbers are accepted as their text).
fn text_arg(body: &Value, key: &str) -> Option<String> {
    match arg(body, key)? {
        Value::String(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A positive integer id given as a JSON number or a digit string.
fn id_value(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// `Ok(None)` for absent, empty or 0 (PHP's `empty()`), `Err` for garbage.
fn optional_id(body: &Value, key: &str) -> Result<Option<u64>, ()> {
    match arg(body, key) {
        None => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(value) => match id_value(value) {
            Some(0) => Ok(None),
            Some(id) => Ok(Some(id)),
            None => Err(()),
        },
    }
}

fn missing(name: &'static str) -> Reply {
    // Seen as 401 with a plain array, whatever the language.
    Reply::json(401, json!([text(Msg::MissingArgument(name), Default::default())]))
}

fn required_email(body: &Value) -> Result<String, Reply> {
    text_arg(body, "email").ok_or_else(|| missing("email"))
}

fn path_id(call: &Call) -> Option<u64> {
    call.id.and_then(|id| id.parse().ok())
}

fn unknown_tag(state: &SimState) -> Reply {
    Reply::error(state.knobs.unknown_tag_answer.code())
}

fn msg(state: &SimState, status: u16, message: Msg) -> Reply {
    Reply::message(status, message, state.knobs.language)
}

fn field_error_on_create(violation: FieldViolation) -> Reply {
    Reply::json(
        406,
        json!({
            "error": 8,
            "field": violation.label,
            "name": violation.key,
            "field_value": violation.value,
            "reason": violation.reason,
        }),
    )
}

/// Email / SMS checks shared by create and sign-in: errors 32, 5 and 11.
fn contact_identity(state: &SimState, body: &Value) -> Result<(Option<String>, Option<String>), Reply> {
    let email = text_arg(body, "email");
    let sms = text_arg(body, "smsnumber");
    if email.is_none() && sms.is_none() {
        return Err(Reply::error(32));
    }
    if let Some(email) = &email {
        let rejected = state.knobs.reject_emails.iter().any(|r| r.trim().eq_ignore_ascii_case(email));
        if rejected || !is_valid_email(email) {
            return Err(Reply::error(5));
        }
    }
    let sms = match sms {
        Some(raw) => Some(normalize_sms_number(&raw).ok_or_else(|| Reply::error(11))?),
        None => None,
    };
    Ok((email, sms))
}

fn upsert_refusal(refusal: UpsertRefusal) -> Reply {
    match refusal {
        UpsertRefusal::Unsubscribed => Reply::error(4),
        UpsertRefusal::SmsTaken => Reply::error(9),
    }
}

// --- account ----------------------------------------------------------------------

fn login(state: &mut SimState, call: &Call) -> Outcome {
    if matches!(call.caller, Caller::Session(_)) {
        return Err(msg(state, 406, Msg::AlreadyLoggedIn));
    }
    let as_string = |key: &'static str| match arg(call.body, key) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(msg(state, 400, Msg::MustBeString(key))),
    };
    let username = as_string("username")?;
    let password = as_string("password")?;
    if username != state.config.username || password != state.config.password {
        return Err(msg(state, 401, Msg::WrongCredentials));
    }
    let sessid = new_session_id();
    state.sessions.insert(sessid.clone(), Session { created: call.now, calls: 0 });
    let session_name = state.session_name.clone();
    // `Secure` only over https: a cookie jar never sends a secure cookie over plain http.
    let secure = if call.https { "; secure" } else { "" };
    let cookie = format!("{session_name}={sessid}; path=/{secure}; httponly");
    let account = json!({
        "uid": "4711",
        "status": "1",
        "tier": "10000",
        "usergroup": "16",
        "username": state.config.username,
        "email": format!("{}@klicktipp-sim.invalid", state.config.username),
        "firstname": "Simulated",
        "lastname": "Account",
        "company": "klicktipp-sim",
        "website": "",
        "street": "",
        "city": "",
        "state": "",
        "zip": "",
        "country": "DE",
        "phone": "",
        "fax": "",
        "affid": "",
    });
    Ok(Reply::ok(json!({
        "sessid": sessid,
        "session_name": session_name,
        "account": account,
    }))
    .with_header("set-cookie", cookie))
}

fn logout(state: &mut SimState, call: &Call) -> Outcome {
    match &call.caller {
        Caller::Session(sessid) => {
            state.sessions.remove(sessid);
            Ok(Reply::done())
        }
        Caller::Partner => Ok(Reply::done()),
        Caller::Anonymous => Err(msg(state, 406, Msg::NotLoggedIn)),
    }
}

// --- contacts ---------------------------------------------------------------------

fn create_subscriber(state: &mut SimState, call: &Call) -> Outcome {
    let body = call.body;
    let (email, sms) = contact_identity(state, body)?;
    let listid = match optional_id(body, "listid") {
        Ok(None) => DEFAULT_DOUBLE_OPTIN_LISTID,
        Ok(Some(id)) if state.process(id).is_some() => id,
        _ => return Err(Reply::error(402)),
    };
    let manual_tag = match optional_id(body, "tagid") {
        Ok(None) => None,
        Ok(Some(id)) if state.tags.contains_key(&id) => Some(id),
        _ => return Err(unknown_tag(state)),
    };
    let fields =
        validate_fields(&state.fields, arg(body, "fields"), state.knobs.language).map_err(field_error_on_create)?;
    let upsert = Upsert { email, sms, listid, manual_tag, smart_tags: Vec::new(), fields };
    let id = state.upsert(upsert, call.now_unix).map_err(upsert_refusal)?;
    contact_reply(state, id)
}

fn contact_reply(state: &SimState, id: u64) -> Outcome {
    let contact = state.contacts.get(&id).ok_or_else(|| msg(state, 404, Msg::NoSuchContact))?;
    Ok(Reply::ok(contact_object(state, contact)))
}

fn search(state: &mut SimState, call: &Call) -> Outcome {
    let email = required_email(call.body)?;
    let id = state.contact_id_by_email(&email).ok_or_else(|| msg(state, 404, Msg::NoSuchContact))?;
    Ok(Reply::ok(json!([id])))
}

/// A comma-separated filter (or an array of values); `default` when absent.
fn csv_filter(
    state: &SimState,
    body: &Value,
    key: &'static str,
    allowed: &[&str],
    default: &[&str],
) -> Result<Vec<String>, Reply> {
    let values: Vec<String> = match arg(body, key) {
        None => return Ok(default.iter().map(|v| (*v).to_owned()).collect()),
        Some(Value::String(text)) => text.split(',').map(|v| v.trim().to_ascii_lowercase()).collect(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().unwrap_or_default().trim().to_ascii_lowercase()).collect()
        }
        Some(_) => return Err(msg(state, 400, Msg::InvalidFilter(key))),
    };
    let values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
    if values.is_empty() || values.iter().any(|v| !allowed.contains(&v.as_str())) {
        return Err(msg(state, 400, Msg::InvalidFilter(key)));
    }
    Ok(values)
}

/// `GET /subscriber?status=subscribed,pending&bounceStatus=nobounce,softbounce`:
/// contact ids (strings), by default the subscribed ones that have not hard-bounced.
fn subscriber_index(state: &mut SimState, call: &Call) -> Outcome {
    let statuses = csv_filter(state, call.body, "status", &["subscribed", "pending", "unsubscribed"], &["subscribed"])?;
    let bounces = csv_filter(
        state,
        call.body,
        "bounceStatus",
        &["nobounce", "softbounce", "hardbounce"],
        &["nobounce", "softbounce"],
    )?;
    // The simulator never bounces: every contact is "Not Bounced".
    let ids: Vec<Value> = if bounces.iter().any(|b| b == "nobounce") {
        state
            .contacts
            .values()
            .filter(|contact| {
                let status = match contact.status {
                    ContactStatus::Subscribed => "subscribed",
                    ContactStatus::Pending => "pending",
                    ContactStatus::Unsubscribed => "unsubscribed",
                };
                statuses.iter().any(|s| s == status)
            })
            .map(|contact| Value::String(contact.id.to_string()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Reply::ok(match state.knobs.subscriber_index_shape {
        SubscriberIndexShape::Object => json!({ "subscribers": ids }),
        SubscriberIndexShape::Array => Value::Array(ids),
    }))
}

fn get_subscriber(state: &mut SimState, call: &Call) -> Outcome {
    let id = path_id(call)
        .filter(|id| state.contacts.contains_key(id))
        .or_else(|| call.id.and_then(|key| state.contact_id_by_key(key)))
        .ok_or_else(|| msg(state, 404, Msg::NoSuchContact))?;
    contact_reply(state, id)
}

fn update_subscriber(state: &mut SimState, call: &Call) -> Outcome {
    let body = call.body;
    let id = path_id(call)
        .filter(|id| state.contacts.contains_key(id))
        .ok_or_else(|| msg(state, 406, Msg::ContactDoesNotExist))?;
    let new_email = text_arg(body, "newemail");
    if let Some(email) = &new_email {
        if !is_valid_email(email) {
            return Err(Reply::json(406, json!({"error": 10, "code": 5})));
        }
        if state.contact_id_by_email(email).is_some_and(|other| other != id) {
            return Err(Reply::error(507));
        }
    }
    let new_sms = match text_arg(body, "newsmsnumber") {
        Some(raw) => {
            let sms = normalize_sms_number(&raw).ok_or_else(|| Reply::json(406, json!({"error": 10, "code": 11})))?;
            if state.contact_by_sms.get(&sms).is_some_and(|other| *other != id) {
                return Err(Reply::json(406, json!({"error": 10, "code": 9})));
            }
            Some(sms)
        }
        None => None,
    };
    // On update a field format error is reported as 7, without details.
    let fields =
        validate_fields(&state.fields, arg(body, "fields"), state.knobs.language).map_err(|_| Reply::error(7))?;
    if let Some(email) = new_email {
        state.set_email(id, &email);
    }
    if let Some(sms) = new_sms {
        state.set_sms(id, &sms);
    }
    state.set_fields(id, &fields);
    Ok(Reply::done())
}

fn delete_subscriber(state: &mut SimState, call: &Call) -> Outcome {
    match path_id(call) {
        Some(id) if state.delete_contact(id) => Ok(Reply::done()),
        _ => Err(msg(state, 404, Msg::NoSuchContact)),
    }
}

/// `tagids` as an array (JSON or PHP form), or a single id.
fn tag_id_list(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::Array(items) => items.iter().map(id_value).collect(),
        Value::Object(map) => map.values().map(id_value).collect(),
        single => id_value(single).map(|id| vec![id]),
    }
}

fn tag(state: &mut SimState, call: &Call) -> Outcome {
    let email = required_email(call.body)?;
    let tag_ids = arg(call.body, "tagids").ok_or_else(|| missing("tagids"))?;
    let id = state.contact_id_by_email(&email).ok_or_else(|| Reply::error(7))?;
    let tag_ids = tag_id_list(tag_ids)
        .filter(|ids| !ids.is_empty() && ids.iter().all(|t| state.tags.contains_key(t)))
        .ok_or_else(|| unknown_tag(state))?;
    state.tag_contact(id, &tag_ids, call.now_unix);
    Ok(Reply::done())
}

fn untag(state: &mut SimState, call: &Call) -> Outcome {
    let email = required_email(call.body)?;
    let tag_id = arg(call.body, "tagid").ok_or_else(|| missing("tagid"))?;
    let id = state.contact_id_by_email(&email).ok_or_else(|| Reply::error(7))?;
    let tag_id = id_value(tag_id).ok_or_else(|| unknown_tag(state))?;
    if state.smart_tags.contains_key(&tag_id) {
        return Err(Reply::error(31));
    }
    if !state.tags.contains_key(&tag_id) {
        return Err(unknown_tag(state));
    }
    state.untag_contact(id, tag_id);
    Ok(Reply::done())
}

fn unsubscribe(state: &mut SimState, call: &Call) -> Outcome {
    let email = required_email(call.body)?;
    let id = state.contact_id_by_email(&email).ok_or_else(|| Reply::error(7))?;
    match state.contacts.get(&id).map(|c| c.status) {
        Some(ContactStatus::Subscribed) => {
            state.unsubscribe(id, call.now_unix);
            Ok(Reply::done())
        }
        _ => Err(Reply::error(9)),
    }
}

fn tagged(state: &mut SimState, call: &Call) -> Outcome {
    let tag_id = arg(call.body, "tagid").ok_or_else(|| missing("tagid"))?;
    let tag_id = id_value(tag_id)
        .filter(|t| state.tags.contains_key(t) || state.smart_tags.contains_key(t))
        .ok_or_else(|| unknown_tag(state))?;
    let entries = state.contacts.values().filter_map(|contact| {
        contact
            .manual_tags
            .get(&tag_id)
            .or_else(|| contact.smart_tags.get(&tag_id))
            .map(|at| (contact.id.to_string(), Value::String(at.to_string())))
    });
    Ok(Reply::ok(id_map(entries, state.knobs.empty_maps_as_arrays)))
}

// --- listbuilding -------------------------------------------------------------------

/// The key entry named by `apikey`: 401 when missing, 406 error 100 when unknown.
fn listbuilding_key(state: &SimState, body: &Value) -> Result<crate::state::ListbuildingEntry, Reply> {
    let apikey = text_arg(body, "apikey").ok_or_else(|| missing("apikey"))?;
    state.listbuilding.iter().find(|entry| entry.apikey == apikey).cloned().ok_or_else(|| {
        Reply::json(406, json!({"error": 100, "error_message": text(Msg::InvalidApiKey, state.knobs.language)}))
    })
}

fn redirect_url(status: ContactStatus, contact_key: &str) -> String {
    match status {
        ContactStatus::Pending => format!("{PENDING_URL}/{contact_key}"),
        _ => format!("{THANKYOU_URL}/{contact_key}"),
    }
}

fn signin(state: &mut SimState, call: &Call) -> Outcome {
    let key = listbuilding_key(state, call.body)?;
    let (email, sms) = contact_identity(state, call.body)?;
    let fields = validate_fields(&state.fields, arg(call.body, "fields"), state.knobs.language)
        .map_err(field_error_on_create)?;
    let upsert = Upsert {
        email,
        sms,
        listid: key.listid,
        manual_tag: Some(key.tagid).filter(|t| state.tags.contains_key(t)),
        smart_tags: vec![key.smart_tag],
        fields,
    };
    let id = state.upsert(upsert, call.now_unix).map_err(upsert_refusal)?;
    let contact = state.contacts.get(&id).ok_or_else(|| msg(state, 404, Msg::NoSuchContact))?;
    Ok(Reply::ok(json!([redirect_url(contact.status, &contact.key)])))
}

fn signout(state: &mut SimState, call: &Call) -> Outcome {
    let key = listbuilding_key(state, call.body)?;
    let email = text_arg(call.body, "email").ok_or_else(|| Reply::error(32))?;
    let id = state.contact_id_by_email(&email).ok_or_else(|| Reply::error(7))?;
    state.untag_contact(id, key.tagid);
    Ok(Reply::done())
}

fn signoff(state: &mut SimState, call: &Call) -> Outcome {
    listbuilding_key(state, call.body)?;
    let email = text_arg(call.body, "email").ok_or_else(|| Reply::error(32))?;
    let id = state
        .contact_id_by_email(&email)
        .filter(|id| state.contacts.get(id).is_some_and(|c| c.status != ContactStatus::Unsubscribed))
        .ok_or_else(|| Reply::error(9))?;
    state.unsubscribe(id, call.now_unix);
    Ok(Reply::done())
}

// --- opt-in processes -------------------------------------------------------------------

fn list_index(state: &SimState) -> Reply {
    let entries = state.processes.iter().map(|p| (p.id.to_string(), Value::String(p.name.clone())));
    Reply::ok(id_map(entries, state.knobs.empty_maps_as_arrays))
}

fn list_get(state: &mut SimState, call: &Call) -> Outcome {
    let process = path_id(call).and_then(|id| state.process(id)).ok_or_else(|| msg(state, 404, Msg::NoSuchOptIn))?;
    Ok(Reply::ok(json!({
        "listid": process.id,
        "name": process.name,
        "usesingleoptin": process.single_optin,
        "pendingurl": PENDING_URL,
        "thankyouurl": THANKYOU_URL,
        "resendconfirmationemail": false,
        "usechangeemail": false,
    })))
}

fn list_redirect(state: &mut SimState, call: &Call) -> Outcome {
    let listid = arg(call.body, "listid").ok_or_else(|| missing("listid"))?;
    let email = required_email(call.body)?;
    id_value(listid).filter(|id| state.process(*id).is_some()).ok_or_else(|| Reply::error(402))?;
    let contact =
        state.contact_id_by_email(&email).and_then(|id| state.contacts.get(&id)).ok_or_else(|| Reply::error(7))?;
    Ok(Reply::ok(json!([redirect_url(contact.status, &contact.key)])))
}

// --- tags -------------------------------------------------------------------------------

fn tag_index(state: &SimState) -> Reply {
    let entries = state.tags.iter().map(|(id, tag)| (id.to_string(), Value::String(tag.name.clone())));
    Reply::ok(id_map(entries, state.knobs.empty_maps_as_arrays))
}

fn tag_get(state: &mut SimState, call: &Call) -> Outcome {
    let (id, tag) = path_id(call)
        .and_then(|id| state.tags.get(&id).map(|tag| (id, tag)))
        .ok_or_else(|| msg(state, 404, Msg::NoSuchTag))?;
    Ok(Reply::ok(json!({
        "tagid": id.to_string(),
        "name": tag.name,
        "text": tag.text,
    })))
}

fn tag_create(state: &mut SimState, call: &Call) -> Outcome {
    let name = text_arg(call.body, "name").ok_or_else(|| msg(state, 406, Msg::TagNotCreated))?;
    let text = text_arg(call.body, "text").unwrap_or_default();
    if state.knobs.duplicate_tag_names == crate::knobs::DuplicateTagPolicy::Reject && state.tag_name_taken(&name, None)
    {
        return Err(msg(state, 406, Msg::TagNameTaken));
    }
    let id = state.create_tag(&name, &text);
    Ok(Reply::ok(json!([id])))
}

fn tag_update(state: &mut SimState, call: &Call) -> Outcome {
    let id = path_id(call).filter(|id| state.tags.contains_key(id)).ok_or_else(|| msg(state, 404, Msg::NoSuchTag))?;
    let name = match arg(call.body, "name") {
        None => None,
        Some(_) => Some(text_arg(call.body, "name").ok_or_else(|| msg(state, 406, Msg::TagNotUpdated))?),
    };
    if let Some(name) = &name
        && state.knobs.duplicate_tag_names == crate::knobs::DuplicateTagPolicy::Reject
        && state.tag_name_taken(name, Some(id))
    {
        return Err(msg(state, 406, Msg::TagNameTaken));
    }
    let text = arg(call.body, "text").map(|_| text_arg(call.body, "text").unwrap_or_default());
    if let Some(tag) = state.tags.get_mut(&id) {
        if let Some(name) = name {
            tag.name = name;
        }
        if let Some(text) = text {
            tag.text = text;
        }
    }
    Ok(Reply::done())
}

fn tag_delete(state: &mut SimState, call: &Call) -> Outcome {
    match path_id(call) {
        Some(id) if state.delete_tag(id) => Ok(Reply::done()),
        _ => Err(msg(state, 404, Msg::NoSuchTag)),
    }
}

// --- fields -------------------------------------------------------------------------------

fn field_index(state: &SimState) -> Reply {
    let language = state.knobs.language;
    let entries = state.fields.iter().map(|def| (def.key.clone(), Value::String(def.label(language).to_owned())));
    Reply::ok(id_map(entries, state.knobs.empty_maps_as_arrays))
}

fn field_get(state: &mut SimState, call: &Call) -> Outcome {
    let unprefixed = call.id.unwrap_or_default();
    let def = state
        .fields
        .iter()
        .find(|def| def.key.strip_prefix("field") == Some(unprefixed))
        .ok_or_else(|| msg(state, 404, Msg::NoSuchField))?;
    Ok(Reply::ok(json!({
        "id": unprefixed,
        "name": def.label(state.knobs.language),
    })))
}
