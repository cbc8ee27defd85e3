//! PATCH as the API server applies it: JSON merge patch (RFC 7386), strategic merge (lists of
//! named items merged by name), JSON patch (RFC 6902).

use serde_json::{Value, json};

use super::Sim;
use super::http::{Resp, json_response, status};
use super::registry::ResourceType;
use super::rest::{conflict, in_version, not_found, scale_view, store_error};
use super::routes::ResourcePath;

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch, as far as the kit needs it: a merge patch whose lists of named
/// objects (webhooks, containers) merge by `name`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch) {
        (Some(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                match (entry.as_array_mut(), v.as_array()) {
                    (Some(existing), Some(items)) if items.iter().all(|i| i.get("name").is_some()) => {
                        for item in items {
                            match existing.iter_mut().find(|e| e.get("name") == item.get("name")) {
                                Some(e) => strategic_merge(e, item),
                                None => existing.push(item.clone()),
                            }
                        }
                    }
                    _ => strategic_merge(entry, v),
                }
            }
        }
        (_, other) => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test, copy, move).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("op missing")?;
        let path = op["path"].as_str().ok_or("path missing")?;
        match kind {
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("the test at {path} failed"));
                }
            }
            "remove" => {
                remove_at(target, path)?;
            }
            "replace" => {
                let slot = target.pointer_mut(path).ok_or_else(|| format!("path {path} does not exist"))?;
                *slot = op["value"].clone();
            }
            "add" => add_at(target, path, op["value"].clone())?,
            "copy" | "move" => {
                let from = op["from"].as_str().ok_or("from missing")?;
                let value = target.pointer(from).cloned().ok_or_else(|| format!("path {from} does not exist"))?;
                if kind == "move" {
                    remove_at(target, from)?;
                }
                add_at(target, path, value)?;
            }
            other => return Err(format!("unknown op {other}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let idx = path.rfind('/').ok_or_else(|| format!("invalid path {path}"))?;
    Ok((&path[..idx], path[idx + 1..].replace("~1", "/").replace("~0", "~")))
}

fn remove_at(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let p = target.pointer_mut(parent).ok_or_else(|| format!("path {parent} does not exist"))?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("path {path} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
            if i < a.len() { Ok(a.remove(i)) } else { Err(format!("index out of range in {path}")) }
        }
        _ => Err(format!("path {parent} is not a container")),
    }
}

fn add_at(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let p = target.pointer_mut(parent).ok_or_else(|| format!("path {parent} does not exist"))?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                if i > a.len() {
                    return Err(format!("index out of range in {path}"));
                }
                a.insert(i, value);
            }
            Ok(())
        }
        _ => Err(format!("path {parent} is not a container")),
    }
}

pub(super) fn patch(
    sim: &Sim,
    rt: &ResourceType,
    rp: &ResourcePath,
    content_type: &str,
    body: &[u8],
    dry_run: bool,
) -> Resp {
    let Ok(patch_doc) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "the body of the request was in an unknown format", None);
    };
    let mut store = sim.store.write().expect("store lock");
    let Some(current) = store.get(rt, &rp.namespace, &rp.name) else {
        return not_found(rt, &rp.name);
    };
    // The scale subresource is patched as an autoscaling/v1 Scale; only its replicas are kept.
    let scale = rp.subresource == "scale";
    let mut updated = if scale { scale_view(&current) } else { current.clone() };
    if content_type.starts_with("application/json-patch+json") {
        if let Err(e) = json_patch(&mut updated, &patch_doc) {
            // A failed `test` op on resourceVersion is a conflict, like the apiserver reports it.
            if e.contains("test") {
                return status(
                    422,
                    "Invalid",
                    &format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                );
            }
            return status(422, "Invalid", &e, None);
        }
    } else {
        // A resourceVersion in a merge patch is a precondition.
        if let Some(want) = patch_doc["metadata"]["resourceVersion"].as_str()
            && current["metadata"]["resourceVersion"].as_str() != Some(want)
        {
            return conflict(rt, &rp.name);
        }
        if content_type.starts_with("application/strategic-merge-patch+json") {
            strategic_merge(&mut updated, &patch_doc);
        } else if content_type.starts_with("application/merge-patch+json") {
            merge_patch(&mut updated, &patch_doc);
        } else if content_type.starts_with("application/apply-patch") {
            return status(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by the simulated API server",
                None,
            );
        } else {
            return status(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
                ),
                None,
            );
        }
    }
    if scale {
        let replicas = updated["spec"]["replicas"].clone();
        updated = current.clone();
        updated["spec"]["replicas"] = replicas;
    }
    updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    match store.update(rt, updated, dry_run) {
        Ok(obj) if scale => json_response(200, &scale_view(&obj)),
        Ok(obj) => json_response(200, &in_version(obj, rt, &rp.version)),
        Err(e) => store_error(rt, &rp.name, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "list": [{"name": "x", "v": 1}]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(v["a"], json!({"c": 2, "d": 3}));
        strategic_merge(&mut v, &json!({"list": [{"name": "x", "v": 2}, {"name": "y"}]}));
        assert_eq!(v["list"], json!([{"name": "x", "v": 2}, {"name": "y"}]));
        json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 2}, {"op": "replace", "path": "/list/0/v", "value": 9}, {"op": "add", "path": "/list/-", "value": 1}])).unwrap();
        assert_eq!(v["list"][0]["v"], 9);
        assert_eq!(v["list"][2], 1);
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 3}])).is_err());
    }
}
