//! Request bodies: JSON, form-urlencoded and multipart, the latter two with PHP
//! bracket keys (`fields[fieldFirstName]=Alex`, `tagids[0]=17`, `tagids[]=18`),
//! all turned into one JSON value so handlers see a single shape.

use serde_json::{Map, Value};

/// `Value::Null` for an empty body.
pub(crate) fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let media_type =
        content_type.and_then(|ct| ct.split(';').next()).map(|mt| mt.trim().to_ascii_lowercase()).unwrap_or_default();
    match media_type.as_str() {
        "application/x-www-form-urlencoded" => parse_form(bytes),
        "multipart/form-data" => {
            let pairs = parse_multipart(content_type.unwrap_or_default(), bytes)?;
            Ok(php_structure(pairs))
        }
        mt if mt.ends_with("json") => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
        // No or another content type: JSON if it parses, otherwise a form.
        _ => serde_json::from_slice(bytes).or_else(|_| parse_form(bytes)),
    }
}

fn parse_form(bytes: &[u8]) -> Result<Value, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|e| format!("invalid form body: {e}"))?;
    Ok(php_structure(pairs))
}

/// Builds PHP's `$_POST` from flat pairs; maps keyed `0..n` become arrays.
pub(crate) fn php_structure(pairs: Vec<(String, String)>) -> Value {
    let mut root = Map::new();
    for (key, value) in pairs {
        let (base, subkeys) = split_php_key(&key);
        insert_path(&mut root, base, &subkeys, value);
    }
    lists_from_index_maps(Value::Object(root))
}

/// `a[b][]` -> ("a", ["b", ""]). A key without brackets has no subkeys.
fn split_php_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let base = &key[..open];
    let mut subkeys = Vec::new();
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            break;
        };
        subkeys.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    (base, subkeys)
}

fn insert_path(map: &mut Map<String, Value>, key: &str, subkeys: &[&str], value: String) {
    // `[]` appends: the next free index.
    let key = if key.is_empty() { map.len().to_string() } else { key.to_owned() };
    match subkeys.split_first() {
        None => {
            map.insert(key, Value::String(value));
        }
        Some((next, rest)) => {
            let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_path(child, next, rest, value);
            }
        }
    }
}

fn lists_from_index_maps(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_list = !map.is_empty() && (0..map.len()).all(|index| map.contains_key(&index.to_string()));
            if is_list {
                let mut entries: Vec<(usize, Value)> =
                    map.into_iter().filter_map(|(k, v)| k.parse().ok().map(|i| (i, v))).collect();
                entries.sort_by_key(|(index, _)| *index);
                Value::Array(entries.into_iter().map(|(_, v)| lists_from_index_maps(v)).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, lists_from_index_maps(v))).collect())
            }
        }
        other => other,
    }
}

/// Minimal `multipart/form-data` reader: text parts only, which is all the API takes.
fn parse_multipart(content_type: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .split(';')
        .find_map(|param| param.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart body without boundary")?;
    let text = String::from_utf8_lossy(bytes);
    let delimiter = format!("--{boundary}");
    let mut pairs = Vec::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, content) =
            part.split_once("\r\n\r\n").ok_or("multipart part without a blank line after its headers")?;
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let name = head
            .lines()
            .filter(|line| line.to_ascii_lowercase().starts_with("content-disposition:"))
            .find_map(disposition_name)
            .ok_or("multipart part without a name")?;
        pairs.push((name, content.to_owned()));
    }
    Ok(pairs)
}

fn disposition_name(line: &str) -> Option<String> {
    line.split(';').find_map(|param| param.trim().strip_prefix("name=").map(|name| name.trim_matches('"').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn php_brackets_become_nested_values() {
        let body = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"email=a%40b.example&fields%5BfieldFirstName%5D=Alex&tagids[0]=17&tagids[1]=18&x[]=1&x[]=2",
        )
        .expect("form parses");
        assert_eq!(
            body,
            json!({"email":"a@b.example","fields":{"fieldFirstName":"Alex"},"tagids":["17","18"],"x":["1","2"]})
        );
    }

    #[test]
    fn multipart_text_parts() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@b.example\r\n--XyZ\r\nContent-Disposition: form-data; name=\"fields[fieldCity]\"\r\n\r\nBerlin\r\n--XyZ--\r\n";
        let value = parse_body(Some("multipart/form-data; boundary=XyZ"), body.as_bytes()).expect("multipart parses");
        assert_eq!(value, json!({"email":"a@b.example","fields":{"fieldCity":"Berlin"}}));
    }

    #[test]
    fn empty_body_is_null_and_untyped_json_is_json() {
        assert_eq!(parse_body(None, b"  "), Ok(Value::Null));
        assert_eq!(parse_body(None, b"{\"a\":1}"), Ok(json!({"a":1})));
        assert!(parse_body(Some("application/json"), b"{").is_err());
    }
}
