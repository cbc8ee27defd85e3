//! What a request asks for in RBAC terms (verb, group, resource, subresource, namespace, or a
//! non-resource URL), so that a 403 names the missing permission and the `kubectl auth can-i`
//! that confirms it.

/// What a request asked for, so that a 403 can name the missing permission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    /// Set for non-resource URLs such as `/metrics`.
    pub non_resource_url: Option<String>,
}

impl Access {
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        Access {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: None,
            namespace: namespace.map(str::to_string),
            non_resource_url: None,
        }
    }

    pub fn non_resource(verb: &str, url: &str) -> Self {
        Access {
            verb: verb.into(),
            non_resource_url: Some(url.split('?').next().unwrap_or(url).to_string()),
            ..Default::default()
        }
    }

    pub fn with_subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.into());
        self
    }

    /// "list on pods in kube-system", "get on /metrics", "create on pods/exec in kube-system".
    pub fn describe(&self) -> String {
        if let Some(url) = &self.non_resource_url {
            return format!("{} on {url}", self.verb);
        }
        let mut res = self.resource.clone();
        if let Some(sub) = &self.subresource {
            res = format!("{res}/{sub}");
        }
        if !self.group.is_empty() {
            res = format!("{res}.{}", self.group);
        }
        match &self.namespace {
            Some(ns) => format!("{} on {res} in {ns}", self.verb),
            None => format!("{} on {res}", self.verb),
        }
    }

    /// The `kubectl auth can-i` command that confirms the permission.
    pub fn can_i(&self) -> String {
        if let Some(url) = &self.non_resource_url {
            return format!("kubectl auth can-i {} {url}", self.verb);
        }
        let mut res = self.resource.clone();
        if !self.group.is_empty() {
            res = format!("{res}.{}", self.group);
        }
        if let Some(sub) = &self.subresource {
            res = format!("{res} --subresource={sub}");
        }
        match &self.namespace {
            Some(ns) => format!("kubectl auth can-i {} {res} -n {ns}", self.verb),
            None => format!("kubectl auth can-i {} {res}", self.verb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_descriptions() {
        assert_eq!(Access::non_resource("get", "/metrics?x=1").describe(), "get on /metrics");
        let exec = Access::resource("create", "", "pods", Some("kube-system")).with_subresource("exec");
        assert_eq!(exec.describe(), "create on pods/exec in kube-system");
        assert_eq!(exec.can_i(), "kubectl auth can-i create pods --subresource=exec -n kube-system");
    }
}
