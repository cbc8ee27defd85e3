//! All YAML goes through here (serde_yaml is deprecated upstream; swapping it is one module).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub fn to_string<T: Serialize>(value: &T) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::invalid_data("Cannot print the result as YAML", e.to_string()))
}

/// Parses one YAML document (the first of a stream), bounded like [`documents`].
pub fn from_str<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    let first = documents(what, text)?.into_iter().next().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(first).map_err(|e| Error::invalid_data(format!("Cannot read {what}"), e.to_string()))
}

/// Parses every document of a multi-document stream (`---` separated) into JSON values;
/// empty documents are skipped. Bounded: a document may not expand to more values than ten per
/// byte of the stream (YAML aliases repeat whole subtrees: a few kilobytes of `*name` can
/// expand to gigabytes). Local tags (`!x [...]`) are dropped and their values kept, as kubectl's
/// decoder (sigs.k8s.io/yaml over go-yaml) reads them.
pub fn documents(what: &str, text: &str) -> Result<Vec<serde_json::Value>> {
    let budget = 10 * text.len() + 10_000;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let counter = Budget { left: std::cell::Cell::new(budget), limit: budget };
        let value = serde::de::DeserializeSeed::deserialize(Node(&counter), doc).map_err(|e| {
            Error::invalid_data(format!("Cannot parse document {} of {what} as YAML", index + 1), e.to_string())
        })?;
        if value.is_null() {
            continue;
        }
        out.push(value);
    }
    Ok(out)
}

struct Budget {
    left: std::cell::Cell<usize>,
    limit: usize,
}

impl Budget {
    fn spend<E: serde::de::Error>(&self) -> std::result::Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(n) => {
                self.left.set(n);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the document expands to more than {} values: YAML aliases (*name) repeat it too much",
                self.limit
            ))),
        }
    }
}

/// One YAML node read into JSON within the budget.
struct Node<'b>(&'b Budget);

impl<'de> serde::de::DeserializeSeed<'de> for Node<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        self.0.spend()?;
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Node<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("YAML data")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Node(self.0))? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Node(self.0))? {
            let key = match key {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => "null".to_string(),
                _ => return Err(serde::de::Error::custom("a mapping key is not a scalar")),
            };
            let value = map.next_value_seed(Node(self.0))?;
            out.insert(key, value);
        }
        Ok(serde_json::Value::Object(out))
    }
    /// A tagged node (`!x value`): the tag is dropped and the value kept.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        let (_tag, variant): (serde::de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(Node(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_streams() {
        let text = "---\na: 1\n---\n\n---\nb: [x, y]\n";
        let docs = documents("test", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["a"], 1);
        assert_eq!(docs[1]["b"][1], "y");
        assert!(documents("test", "a: [").is_err());
    }

    #[test]
    fn alias_bombs_stop_at_the_budget() {
        // Nine levels of ten aliases each: 10^9 strings from a few hundred bytes.
        let mut text = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let e = documents("bomb", &text).unwrap_err();
        assert!(e.why.contains("YAML aliases"), "{e:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "stopped early");
        // Ordinary reuse of an anchor is fine.
        let ok = documents("anchors", "base: &b {x: 1}\none: *b\ntwo: *b\n").unwrap();
        assert_eq!(ok[0]["two"]["x"], 1);
    }

    #[test]
    fn local_tags_are_dropped_and_their_values_kept() {
        // kubectl reads this as a list of webhooks; a tag must not hide it.
        let docs = documents("tagged", "kind: ValidatingWebhookConfiguration\nwebhooks: !x [{name: a}]\n").unwrap();
        assert_eq!(docs[0]["webhooks"][0]["name"], "a");
        let docs = documents("tagged", "a: !custom 5\nb: !!str 7\n").unwrap();
        assert_eq!((docs[0]["a"].clone(), docs[0]["b"].clone()), (serde_json::json!(5), serde_json::json!("7")));
    }
}
