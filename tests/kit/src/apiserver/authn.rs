//! Who a request acts as: bearer token, client certificate or anonymous, then impersonation
//! (`--as`, `--as-group`) as the apiserver's filter checks it; and the non-resource URL check.

use http::HeaderMap;

use super::Sim;
use super::auth::{self, Attributes, Identity};
use super::http::{Resp, json_response};

/// Who sent the request: the bearer token's user, else the client certificate's subject, else
/// system:anonymous (a token nobody holds is refused with 401); then whom it acts as, when it
/// impersonates (`--as` / `--as-group`), as the apiserver's filters do it in that order.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub(super) fn authenticate(sim: &Sim, headers: &HeaderMap, cert_identity: Option<Identity>) -> Result<Identity, Resp> {
    let identity = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(value) if value.starts_with("Bearer ") => {
            let token = value.trim_start_matches("Bearer ").trim();
            let users = sim.users.read().expect("users lock");
            match users.iter().find(|u| u.token.as_deref() == Some(token)) {
                Some(u) => {
                    let mut groups = u.groups.clone();
                    groups.push("system:authenticated".into());
                    Identity { user: u.name.clone(), groups }
                }
                None => return Err(json_response(401, &auth::unauthorized_status())),
            }
        }
        _ => match cert_identity {
            Some(mut id) => {
                id.groups.push("system:authenticated".into());
                id
            }
            None => Identity::anonymous(),
        },
    };
    match headers.get("impersonate-user").and_then(|v| v.to_str().ok()) {
        Some(as_user) => {
            let groups: Vec<String> = headers
                .get_all("impersonate-group")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            impersonated(sim, &identity, as_user, groups)
        }
        None => Ok(identity),
    }
}

/// The identity a request acts as: each impersonated thing must be allowed (`impersonate` on
/// users, serviceaccounts or groups); the user's own groups are never looked up — a service
/// account gets its fixed groups when none are given, everyone but system:anonymous gets
/// system:authenticated.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn impersonated(sim: &Sim, requestor: &Identity, as_user: &str, groups: Vec<String>) -> Result<Identity, Resp> {
    let users = sim.users.read().expect("users lock").clone();
    let service_account = as_user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, name)| (ns.to_string(), name.to_string()));
    let mut checks = vec![match &service_account {
        Some((ns, name)) => Attributes {
            verb: "impersonate".into(),
            resource: "serviceaccounts".into(),
            namespace: ns.clone(),
            name: name.clone(),
            ..Default::default()
        },
        None => Attributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: as_user.into(),
            ..Default::default()
        },
    }];
    checks.extend(groups.iter().map(|g| Attributes {
        verb: "impersonate".into(),
        resource: "groups".into(),
        name: g.clone(),
        ..Default::default()
    }));
    if let Some(denied) = checks.iter().find(|attrs| !auth::authorize(requestor, &users, attrs)) {
        return Err(json_response(403, &auth::forbidden_status(requestor, denied)));
    }
    let mut groups = groups;
    if groups.is_empty()
        && let Some((ns, _)) = &service_account
    {
        groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if as_user != "system:anonymous"
        && !groups.iter().any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        groups.push("system:authenticated".into());
    }
    Ok(Identity { user: as_user.to_string(), groups })
}

#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub(super) fn non_resource_allowed(sim: &Sim, identity: &Identity, path: &str) -> Result<(), Resp> {
    let users = sim.users.read().expect("users lock");
    let attrs = Attributes { verb: "get".into(), path: Some(path.to_string()), ..Default::default() };
    if auth::authorize(identity, &users, &attrs) {
        Ok(())
    } else {
        Err(json_response(403, &auth::forbidden_status(identity, &attrs)))
    }
}
