//! The object store: JSON objects per resource type with resourceVersions, optimistic
//! concurrency, label/field selectors, and generated collections (thousands of nodes and pods
//! made on demand instead of held in memory).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::ResourceType;

/// (namespace or "", name)
pub type ObjKey = (String, String);

/// Makes the item at an index.
pub type MakeItem = Arc<dyn Fn(usize) -> Value + Send + Sync>;
/// Finds an item's index by (namespace, name).
pub type FindItem = Arc<dyn Fn(&str, &str) -> Option<usize> + Send + Sync>;

/// A collection whose items are made on demand from their index.
#[derive(Clone)]
pub struct Generated {
    pub count: usize,
    pub make: MakeItem,
    /// Index of an item by (namespace, name), when the names can be parsed back.
    pub find: FindItem,
}

#[derive(Default, Clone)]
pub struct Collection {
    pub objects: BTreeMap<ObjKey, Value>,
    pub generated: Option<Generated>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    AlreadyExists,
    /// The object's resourceVersion differs from the precondition.
    Conflict,
}

#[derive(Default)]
pub struct Store {
    rv: u64,
    collections: HashMap<(&'static str, &'static str), Collection>,
}

fn key_of(rt: &ResourceType, obj: &Value) -> ObjKey {
    let ns = if rt.namespaced {
        obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string()
    } else {
        String::new()
    };
    (ns, obj["metadata"]["name"].as_str().unwrap_or("").to_string())
}

/// A random-looking but deterministic-enough UID.
pub fn new_uid() -> String {
    let a: u128 = rand::random();
    let h = format!("{a:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn collection_mut(&mut self, rt: &ResourceType) -> &mut Collection {
        self.collections.entry((rt.group, rt.resource)).or_default()
    }

    pub fn collection(&self, rt: &ResourceType) -> Option<&Collection> {
        self.collections.get(&(rt.group, rt.resource))
    }

    /// Installs a generated collection.
    pub fn set_generated(&mut self, rt: &ResourceType, generated: Generated) {
        self.collection_mut(rt).generated = Some(generated);
    }

    fn stamp(&mut self, rt: &ResourceType, obj: &mut Value, keep_creation: bool) {
        self.rv += 1;
        let rv = self.rv.to_string();
        let meta = &mut obj["metadata"];
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["resourceVersion"] = json!(rv);
        if meta["uid"].as_str().unwrap_or("").is_empty() {
            meta["uid"] = json!(new_uid());
        }
        if !keep_creation || meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        if rt.namespaced && meta["namespace"].is_null() {
            meta["namespace"] = json!("default");
        }
        obj["kind"] = json!(rt.kind);
        if obj["apiVersion"].is_null() {
            obj["apiVersion"] = json!(super::registry::api_version(rt.group, rt.versions[0]));
        }
    }

    /// Inserts or replaces without checks (scenario set-up), keeping a creationTimestamp.
    pub fn put(&mut self, rt: &ResourceType, mut obj: Value) -> Value {
        self.stamp(rt, &mut obj, true);
        let key = key_of(rt, &obj);
        self.collection_mut(rt).objects.insert(key, obj.clone());
        obj
    }

    /// Creates; fails if the name exists.
    pub fn create(&mut self, rt: &ResourceType, mut obj: Value, dry_run: bool) -> Result<Value, StoreError> {
        if let Some(prefix) = obj["metadata"]["generateName"].as_str().map(str::to_string)
            && obj["metadata"]["name"].as_str().unwrap_or("").is_empty()
        {
            let suffix: String = (0..5).map(|_| (b'a' + rand::random::<u8>() % 26) as char).collect();
            obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let key = key_of(rt, &obj);
        if self.get(rt, &key.0, &key.1).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("uid");
            m.remove("creationTimestamp");
        }
        if dry_run {
            let mut copy = obj;
            let saved = self.rv;
            self.stamp(rt, &mut copy, false);
            self.rv = saved;
            copy["metadata"]["resourceVersion"] = json!("");
            return Ok(copy);
        }
        self.stamp(rt, &mut obj, false);
        self.collection_mut(rt).objects.insert(key, obj.clone());
        Ok(obj)
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Value> {
        let ns = if rt.namespaced { namespace } else { "" };
        let col = self.collection(rt)?;
        if let Some(v) = col.objects.get(&(ns.to_string(), name.to_string())) {
            return Some(v.clone());
        }
        let generated = col.generated.as_ref()?;
        let index = (generated.find)(ns, name)?;
        (index < generated.count).then(|| (generated.make)(index))
    }

    /// Replaces an existing object; `metadata.resourceVersion` of `obj`, when set, must match.
    pub fn update(&mut self, rt: &ResourceType, mut obj: Value, dry_run: bool) -> Result<Value, StoreError> {
        let key = key_of(rt, &obj);
        let current = self.get(rt, &key.0, &key.1).ok_or(StoreError::NotFound)?;
        let wanted_rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
        if !wanted_rv.is_empty() && current["metadata"]["resourceVersion"].as_str() != Some(wanted_rv.as_str()) {
            return Err(StoreError::Conflict);
        }
        obj["metadata"]["uid"] = current["metadata"]["uid"].clone();
        obj["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
        if dry_run {
            return Ok(obj);
        }
        self.stamp(rt, &mut obj, true);
        self.collection_mut(rt).objects.insert(key, obj.clone());
        Ok(obj)
    }

    /// Deletes; `precondition_rv`, when set, must match.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        let ns = if rt.namespaced { namespace.to_string() } else { String::new() };
        let current = self.get(rt, &ns, name).ok_or(StoreError::NotFound)?;
        if let Some(rv) = precondition_rv
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(StoreError::Conflict);
        }
        if !dry_run {
            self.rv += 1;
            self.collection_mut(rt).objects.remove(&(ns, name.to_string()));
        }
        Ok(current)
    }

    /// Every object of a type (stored first, then generated), optionally in one namespace.
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        self.for_each(rt, namespace, |v| {
            out.push(v);
            true
        });
        out
    }

    /// Visits objects in order until `visit` returns false.
    pub fn for_each(&self, rt: &ResourceType, namespace: Option<&str>, mut visit: impl FnMut(Value) -> bool) {
        let Some(col) = self.collection(rt) else {
            return;
        };
        for ((ns, _), v) in &col.objects {
            if namespace.is_some_and(|want| rt.namespaced && want != ns) {
                continue;
            }
            if !visit(v.clone()) {
                return;
            }
        }
        if let Some(g) = &col.generated {
            for i in 0..g.count {
                let v = (g.make)(i);
                if let Some(want) = namespace
                    && rt.namespaced
                    && v["metadata"]["namespace"].as_str() != Some(want)
                {
                    continue;
                }
                if !visit(v) {
                    return;
                }
            }
        }
    }

    /// Applies `change` to a stored object in place (scenario dynamics: lease renewals).
    pub fn modify(&mut self, rt: &ResourceType, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> bool {
        let ns = if rt.namespaced { namespace.to_string() } else { String::new() };
        self.rv += 1;
        let rv = self.rv.to_string();
        let Some(col) = self.collections.get_mut(&(rt.group, rt.resource)) else {
            return false;
        };
        match col.objects.get_mut(&(ns, name.to_string())) {
            Some(obj) => {
                change(obj);
                obj["metadata"]["resourceVersion"] = json!(rv);
                true
            }
            None => false,
        }
    }
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),!h,i`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(rest) = part.strip_prefix('!') {
                Requirement::NotExists(rest.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), parse_set(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), parse_set(v)?)
            } else if part.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(part.to_string())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_top_level(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let t = text.trim();
    let inner =
        t.strip_prefix('(').and_then(|x| x.strip_suffix(')')).ok_or_else(|| format!("expected (values): {t}"))?;
    Ok(inner.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// A field selector (`metadata.name=x,spec.nodeName!=y`), evaluated on the JSON object.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((k, v)) = part.split_once("!=") {
                terms.push((k.to_string(), false, v.to_string()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                terms.push((k.to_string(), true, v.to_string()));
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            }
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, equal, want)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let have = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

pub fn labels_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels = json!({"tier": "control-plane", "component": "etcd"});
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(ok("tier=control-plane"));
        assert!(ok("tier==control-plane,component=etcd"));
        assert!(!ok("component=kube-apiserver"));
        assert!(ok("component in (etcd, kube-apiserver)"));
        assert!(!ok("component notin (etcd)"));
        assert!(ok("tier,!missing"));
        assert!(!ok("!tier"));
        assert!(ok("component!=kube-scheduler"));
        assert!(ok(""));
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "kube-system"}, "spec": {"nodeName": "cp1"}, "type": "Warning"});
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&obj));
        assert!(FieldSelector::parse("spec.nodeName!=cp2,type=Warning").unwrap().matches(&obj));
        assert!(!FieldSelector::parse("metadata.namespace=default").unwrap().matches(&obj));
    }
}
