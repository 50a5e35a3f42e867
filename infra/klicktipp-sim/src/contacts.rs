//! Contact and tag operations shared by the Management and Listbuilding routes.

use std::collections::BTreeMap;

use crate::state::{Contact, ContactStatus, ManualTag, SimState, contact_key};

/// One add-or-update, already validated.
pub(crate) struct Upsert {
    pub email: Option<String>,
    pub sms: Option<String>,
    pub listid: u64,
    pub manual_tag: Option<u64>,
    pub smart_tags: Vec<u64>,
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpsertRefusal {
    /// Error 4: re-subscribing an unsubscribed contact is not allowed.
    Unsubscribed,
    /// Error 9: the SMS number belongs to another contact.
    SmsTaken,
}

impl SimState {
    /// Creates or updates by email (case-insensitive), else by SMS number.
    pub fn upsert(&mut self, upsert: Upsert, now: u64) -> Result<u64, UpsertRefusal> {
        let by_email = upsert.email.as_deref().and_then(|email| self.contact_id_by_email(email));
        let by_sms = upsert.sms.as_ref().and_then(|sms| self.contact_by_sms.get(sms).copied());
        let existing = match (by_email, by_sms) {
            (Some(a), Some(b)) if a != b => return Err(UpsertRefusal::SmsTaken),
            (Some(id), _) => Some(id),
            (None, Some(id)) => {
                let has_other_email = self.contacts.get(&id).is_some_and(|contact| !contact.email.is_empty());
                if upsert.email.is_some() && has_other_email {
                    return Err(UpsertRefusal::SmsTaken);
                }
                Some(id)
            }
            (None, None) => None,
        };
        let single_optin = self.process(upsert.listid).is_some_and(|process| process.single_optin);

        let id = match existing.and_then(|id| self.contacts.get_mut(&id)) {
            Some(contact) => {
                if contact.status == ContactStatus::Unsubscribed {
                    return Err(UpsertRefusal::Unsubscribed);
                }
                // A pending contact entering a single opt-in process is confirmed by it.
                if contact.status == ContactStatus::Pending && single_optin {
                    contact.status = ContactStatus::Subscribed;
                    contact.subscribed_at = Some(now);
                    contact.listid = upsert.listid;
                }
                contact.id
            }
            None => {
                let id = self.next_contact_id;
                self.next_contact_id += 1;
                let status = if single_optin { ContactStatus::Subscribed } else { ContactStatus::Pending };
                self.contacts.insert(
                    id,
                    Contact {
                        id,
                        key: contact_key(id),
                        email: String::new(),
                        sms: None,
                        status,
                        listid: upsert.listid,
                        fields: BTreeMap::new(),
                        manual_tags: BTreeMap::new(),
                        smart_tags: BTreeMap::new(),
                        optin_at: now,
                        subscribed_at: single_optin.then_some(now),
                        unsubscribed_at: None,
                    },
                );
                id
            }
        };
        if let Some(email) = upsert.email {
            self.set_email(id, &email);
        }
        if let Some(sms) = upsert.sms {
            self.set_sms(id, &sms);
        }
        self.set_fields(id, &upsert.fields);
        if let Some(tag) = upsert.manual_tag {
            self.tag_contact(id, &[tag], now);
        }
        if let Some(contact) = self.contacts.get_mut(&id) {
            for smart in upsert.smart_tags {
                contact.smart_tags.entry(smart).or_insert(now);
            }
        }
        Ok(id)
    }

    /// Sets the email unless the contact already has exactly this one.
    pub fn set_email(&mut self, id: u64, email: &str) {
        let Some(contact) = self.contacts.get_mut(&id) else {
            return;
        };
        let lower = email.to_lowercase();
        if contact.email.to_lowercase() == lower {
            return;
        }
        let previous = std::mem::replace(&mut contact.email, email.to_owned());
        self.contact_by_email.remove(&previous.to_lowercase());
        self.contact_by_email.insert(lower, id);
    }

    pub fn set_sms(&mut self, id: u64, sms: &str) {
        let Some(contact) = self.contacts.get_mut(&id) else {
            return;
        };
        if let Some(previous) = contact.sms.replace(sms.to_owned()) {
            self.contact_by_sms.remove(&previous);
        }
        self.contact_by_sms.insert(sms.to_owned(), id);
    }

    /// An empty value clears the field.
    pub fn set_fields(&mut self, id: u64, fields: &[(String, String)]) {
        let Some(contact) = self.contacts.get_mut(&id) else {
            return;
        };
        for (key, value) in fields {
            if value.is_empty() {
                contact.fields.remove(key);
            } else {
                contact.fields.insert(key.clone(), value.clone());
            }
        }
    }

    /// Idempotent: the first tagging time is kept.
    pub fn tag_contact(&mut self, id: u64, tag_ids: &[u64], now: u64) {
        if let Some(contact) = self.contacts.get_mut(&id) {
            for tag in tag_ids {
                contact.manual_tags.entry(*tag).or_insert(now);
            }
        }
    }

    pub fn untag_contact(&mut self, id: u64, tag_id: u64) {
        if let Some(contact) = self.contacts.get_mut(&id) {
            contact.manual_tags.remove(&tag_id);
        }
    }

    pub fn unsubscribe(&mut self, id: u64, now: u64) {
        if let Some(contact) = self.contacts.get_mut(&id) {
            contact.status = ContactStatus::Unsubscribed;
            contact.unsubscribed_at = Some(now);
        }
    }

    pub fn delete_contact(&mut self, id: u64) -> bool {
        let Some(contact) = self.contacts.remove(&id) else {
            return false;
        };
        self.contact_by_email.remove(&contact.email.to_lowercase());
        if let Some(sms) = &contact.sms {
            self.contact_by_sms.remove(sms);
        }
        true
    }

    pub fn create_tag(&mut self, name: &str, text: &str) -> u64 {
        let id = self.next_tag_id;
        self.next_tag_id += 1;
        self.tags.insert(id, ManualTag { name: name.to_owned(), text: text.to_owned() });
        id
    }

    /// Whether another manual tag (not `except`) has this name, case-insensitively.
    pub fn tag_name_taken(&self, name: &str, except: Option<u64>) -> bool {
        let wanted = name.trim().to_lowercase();
        self.tags.iter().any(|(id, tag)| Some(*id) != except && tag.name.trim().to_lowercase() == wanted)
    }

    /// Removes the tag and takes it off every contact.
    pub fn delete_tag(&mut self, id: u64) -> bool {
        if self.tags.remove(&id).is_none() {
            return false;
        }
        for contact in self.contacts.values_mut() {
            contact.manual_tags.remove(&id);
        }
        true
    }

    /// Test hook: a pending contact confirms its double opt-in.
    pub fn confirm_optin(&mut self, email: &str, now: u64) -> bool {
        let Some(id) = self.contact_id_by_email(email) else {
            return false;
        };
        match self.contacts.get_mut(&id) {
            Some(contact) if contact.status == ContactStatus::Pending => {
                contact.status = ContactStatus::Subscribed;
                contact.subscribed_at = Some(now);
                true
            }
            _ => false,
        }
    }
}
