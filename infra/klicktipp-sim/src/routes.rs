//! The route table and Symfony-like matching: optional `.json` suffix, the
//! first route matching path and method wins, a path known only for other
//! methods is a 405 naming the allowed ones.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Login,
    Logout,
    SubscriberCreate,
    SubscriberIndex,
    Signin,
    Signout,
    Signoff,
    Search,
    Tag,
    Untag,
    Unsubscribe,
    Tagged,
    SubscriberGet,
    SubscriberUpdate,
    SubscriberDelete,
    ListIndex,
    ListGet,
    ListRedirect,
    TagIndex,
    TagGet,
    TagCreate,
    TagUpdate,
    TagDelete,
    FieldIndex,
    FieldGet,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Login and logout check credentials / the session themselves.
    Open,
    /// Listbuilding: the `apikey` in the body.
    ApiKey,
    /// Management API: session cookie or partner headers.
    Management,
}

impl Endpoint {
    pub fn access(self) -> Access {
        match self {
            Self::Login | Self::Logout => Access::Open,
            Self::Signin | Self::Signout | Self::Signoff => Access::ApiKey,
            _ => Access::Management,
        }
    }
}

struct RouteDef {
    method: &'static str,
    pattern: &'static str,
    endpoint: Endpoint,
}

const fn route(method: &'static str, pattern: &'static str, endpoint: Endpoint) -> RouteDef {
    RouteDef { method, pattern, endpoint }
}

/// Literal routes before `{id}` routes with the same prefix, as in Symfony.
const ROUTES: &[RouteDef] = &[
    route("POST", "/account/login", Endpoint::Login),
    route("POST", "/account/logout", Endpoint::Logout),
    route("POST", "/subscriber", Endpoint::SubscriberCreate),
    route("GET", "/subscriber", Endpoint::SubscriberIndex),
    route("POST", "/subscriber/signin", Endpoint::Signin),
    route("POST", "/subscriber/signout", Endpoint::Signout),
    route("POST", "/subscriber/signoff", Endpoint::Signoff),
    route("POST", "/subscriber/search", Endpoint::Search),
    route("POST", "/subscriber/tag", Endpoint::Tag),
    route("POST", "/subscriber/untag", Endpoint::Untag),
    route("POST", "/subscriber/unsubscribe", Endpoint::Unsubscribe),
    route("POST", "/subscriber/tagged", Endpoint::Tagged),
    route("GET", "/subscriber/{id}", Endpoint::SubscriberGet),
    route("PUT", "/subscriber/{id}", Endpoint::SubscriberUpdate),
    route("DELETE", "/subscriber/{id}", Endpoint::SubscriberDelete),
    route("GET", "/list", Endpoint::ListIndex),
    route("POST", "/list/redirect", Endpoint::ListRedirect),
    route("GET", "/list/{id}", Endpoint::ListGet),
    route("GET", "/tag", Endpoint::TagIndex),
    route("POST", "/tag", Endpoint::TagCreate),
    route("GET", "/tag/{id}", Endpoint::TagGet),
    route("PUT", "/tag/{id}", Endpoint::TagUpdate),
    route("DELETE", "/tag/{id}", Endpoint::TagDelete),
    route("GET", "/field", Endpoint::FieldIndex),
    route("GET", "/field/{id}", Endpoint::FieldGet),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteMatch {
    Found {
        endpoint: Endpoint,
        /// The `{id}` segment, if the route has one.
        id: Option<String>,
        /// `"GET /subscriber/{id}"`: the label calls are counted under.
        label: String,
    },
    MethodNotAllowed {
        allowed: Vec<&'static str>,
        label: String,
    },
    NotFound {
        label: String,
    },
}

/// Path segments with the `.json` suffix of the last one removed.
fn segments(path: &str) -> Vec<&str> {
    let path = path.strip_suffix(".json").unwrap_or(path);
    path.trim_start_matches('/').split('/').collect()
}

fn match_pattern<'a>(pattern: &str, segments: &[&'a str]) -> Option<Option<&'a str>> {
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut id = None;
    for (part, segment) in parts.iter().zip(segments) {
        if *part == "{id}" {
            if segment.is_empty() {
                return None;
            }
            id = Some(*segment);
        } else if part != segment {
            return None;
        }
    }
    Some(id)
}

pub(crate) fn match_route(method: &str, path: &str) -> RouteMatch {
    let segments = segments(path);
    let mut allowed: Vec<&'static str> = Vec::new();
    let mut pattern_for_label = None;
    for def in ROUTES {
        let Some(id) = match_pattern(def.pattern, &segments) else {
            continue;
        };
        if def.method == method {
            return RouteMatch::Found {
                endpoint: def.endpoint,
                id: id.map(str::to_owned),
                label: format!("{} {}", def.method, def.pattern),
            };
        }
        if !allowed.contains(&def.method) {
            allowed.push(def.method);
        }
        pattern_for_label.get_or_insert(def.pattern);
    }
    match pattern_for_label {
        Some(pattern) => RouteMatch::MethodNotAllowed { allowed, label: format!("{method} {pattern}") },
        None => RouteMatch::NotFound { label: format!("{method} {}", generic_path(&segments)) },
    }
}

/// Numeric segments become `{id}` so unknown paths do not explode the counters.
fn generic_path(segments: &[&str]) -> String {
    let parts: Vec<&str> = segments
        .iter()
        .map(|s| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { "{id}" } else { s })
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> (Endpoint, Option<String>, String) {
        match match_route(method, path) {
            RouteMatch::Found { endpoint, id, label } => (endpoint, id, label),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn literal_routes_and_ids_with_json_suffix() {
        assert_eq!(found("POST", "/subscriber.json").0, Endpoint::SubscriberCreate);
        assert_eq!(found("POST", "/subscriber/search").0, Endpoint::Search);
        let (endpoint, id, label) = found("GET", "/subscriber/123.json");
        assert_eq!(endpoint, Endpoint::SubscriberGet);
        assert_eq!(id.as_deref(), Some("123"));
        assert_eq!(label, "GET /subscriber/{id}");
        // Symfony falls through to the {id} route for another method.
        assert_eq!(found("GET", "/subscriber/search").0, Endpoint::SubscriberGet);
        assert_eq!(found("GET", "/subscriber.json").0, Endpoint::SubscriberIndex);
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        assert_eq!(
            match_route("DELETE", "/tag"),
            RouteMatch::MethodNotAllowed { allowed: vec!["GET", "POST"], label: "DELETE /tag".to_owned() }
        );
        assert_eq!(match_route("GET", "/nope/12"), RouteMatch::NotFound { label: "GET /nope/{id}".to_owned() });
    }
}
