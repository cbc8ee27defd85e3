//! All YAML goes through here (serde_yaml is deprecated upstream; swapping it is one module).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub fn to_string<T: Serialize>(value: &T) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::invalid_data("Cannot print the result as YAML", e.to_string()))
}

/// Parses one YAML document.
pub fn from_str<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| Error::invalid_data(format!("Cannot parse {what} as YAML"), e.to_string()))
}

/// Parses every document of a multi-document stream (`---` separated) into JSON values;
/// empty documents are skipped.
pub fn documents(what: &str, text: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize_any_document(doc).map_err(|e| {
            Error::invalid_data(format!("Cannot parse document {} of {what} as YAML", index + 1), e.to_string())
        })?;
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(&value).map_err(|e| {
            Error::invalid_data(format!("Document {} of {what} is not plain data", index + 1), e.to_string())
        })?;
        out.push(json);
    }
    Ok(out)
}

trait DeserializeDocument: Sized {
    fn deserialize_any_document(doc: serde_yaml::Deserializer<'_>) -> std::result::Result<Self, serde_yaml::Error>;
}

impl DeserializeDocument for serde_yaml::Value {
    fn deserialize_any_document(doc: serde_yaml::Deserializer<'_>) -> std::result::Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(doc)
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
}
