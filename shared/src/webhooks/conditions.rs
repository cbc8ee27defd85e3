//! A webhook's `matchConditions`, evaluated with a CEL interpreter (cel-rust) as the API server
//! does before it calls the webhook (kubernetes `staging/src/k8s.io/apiserver/pkg/admission/
//! plugin/webhook/matchconditions/matcher.go`): any condition false skips the webhook; all true
//! call it; an error with none false leaves it to the failurePolicy. What this interpreter cannot
//! evaluate (the `authorizer`, a Kubernetes-only function) is unknown, never "excluded".

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr};
use cel::{Context, Env, IdedExpr, Program, Value as CelValue};
use serde_json::Value;

/// What the conditions decide for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionOutcome {
    /// Every condition is true (or there are none): the webhook is called.
    Called,
    /// This condition is false: the webhook is skipped.
    Skipped { condition: String },
    /// Not decidable here; the reason says why.
    Unknown { reason: String },
}

/// The environment the API server gives match conditions, as far as cel-rust has it: the
/// standard library, and the strings and lists extensions Kubernetes also enables
/// (`staging/src/k8s.io/apiserver/pkg/cel/environment/base.go`).
static ENVIRONMENT: LazyLock<Option<Arc<Env>>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings).ok()?;
    env.add_extension(cel::extensions::lists).ok()?;
    Some(Arc::new(env))
});

/// Variables Kubernetes provides that an offline evaluation cannot answer (a policy's
/// `variables` and `namespaceObject` included: they need the policy's context or the cluster).
const UNANSWERABLE_VARIABLES: [&str; 4] = ["authorizer", "params", "variables", "namespaceObject"];

enum Compiled {
    Program(Box<Program>),
    Unusable(String),
}

/// Compiled expressions by source text: policy engines register many webhooks with the same
/// conditions, and parsing costs more than evaluating.
#[derive(Default)]
pub struct CompileCache {
    programs: RefCell<HashMap<String, Rc<Compiled>>>,
}

/// One request's variables (`request`, `object`, `oldObject`), converted for CEL once and
/// evaluated by every webhook's conditions.
pub struct RequestContext {
    context: Result<Context<'static, 'static>, String>,
    /// Each compiled expression's answer for this request, by its address in the cache: webhooks
    /// that share a condition share its evaluation.
    answers: RefCell<HashMap<usize, Result<bool, String>>>,
}

impl RequestContext {
    pub fn new(request: &Value, object: &Value, old_object: &Value) -> RequestContext {
        let Some(env) = ENVIRONMENT.as_ref() else {
            return RequestContext::failed("the CEL environment could not be built".into());
        };
        let mut context = Context::with_env(env.clone());
        for (name, value) in [("request", request), ("object", object), ("oldObject", old_object)] {
            match cel::to_value(value) {
                Ok(v) => context.add_variable_from_value(name, v),
                Err(e) => return RequestContext::failed(format!("{name} cannot be given to CEL: {e}")),
            }
        }
        RequestContext { context: Ok(context), answers: RefCell::default() }
    }

    fn failed(reason: String) -> RequestContext {
        RequestContext { context: Err(reason), answers: RefCell::default() }
    }

    /// One expression's answer for this request: its value, or why it has none (an evaluation
    /// error, or an expression this interpreter cannot run).
    pub fn evaluate(&self, expression: &Expression) -> Result<bool, String> {
        match &self.context {
            Ok(context) => self.answer(context, &expression.compiled),
            Err(reason) => Err(reason.clone()),
        }
    }

    fn answer(&self, context: &Context, compiled: &Rc<Compiled>) -> Result<bool, String> {
        let key = Rc::as_ptr(compiled) as usize;
        if let Some(known) = self.answers.borrow().get(&key) {
            return known.clone();
        }
        let answer = match compiled.as_ref() {
            Compiled::Unusable(why) => Err(why.clone()),
            Compiled::Program(program) => match program.execute(context) {
                Ok(CelValue::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("it evaluates to {other:?}, not a bool")),
                Err(e) => Err(format!("it fails to evaluate: {e}")),
            },
        };
        self.answers.borrow_mut().insert(key, answer.clone());
        answer
    }
}

/// The conditions of one webhook, compiled once.
pub struct MatchConditions {
    conditions: Vec<(String, String, Rc<Compiled>)>,
}

impl MatchConditions {
    pub fn compile(conditions: &[(String, String)], cache: &CompileCache) -> MatchConditions {
        let conditions = conditions
            .iter()
            .map(|(name, expression)| (name.clone(), expression.clone(), cache.get(expression)))
            .collect();
        MatchConditions { conditions }
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Evaluates every condition against one request, as the API server would.
    pub fn evaluate(&self, request: &RequestContext) -> ConditionOutcome {
        let context = match &request.context {
            Ok(c) => c,
            Err(reason) => return ConditionOutcome::Unknown { reason: reason.clone() },
        };
        let mut unknown: Option<String> = None;
        for (name, expression, compiled) in &self.conditions {
            match request.answer(context, compiled) {
                // One false condition decides, whatever the others would say.
                Ok(false) => return ConditionOutcome::Skipped { condition: name.clone() },
                Ok(true) => {}
                Err(why) => {
                    unknown.get_or_insert_with(|| format!("matchCondition {name} ({expression}): {why}"));
                }
            }
        }
        match unknown {
            Some(reason) => ConditionOutcome::Unknown { reason },
            None => ConditionOutcome::Called,
        }
    }
}

impl CompileCache {
    fn get(&self, expression: &str) -> Rc<Compiled> {
        self.programs
            .borrow_mut()
            .entry(expression.to_string())
            .or_insert_with(|| Rc::new(compile_one(expression)))
            .clone()
    }
}

/// One compiled expression (a policy's validation), with what it reads of the object.
pub struct Expression {
    compiled: Rc<Compiled>,
}

impl Expression {
    pub fn compile(expression: &str, cache: &CompileCache) -> Expression {
        Expression { compiled: cache.get(expression) }
    }

    /// Why it cannot run here, if it cannot.
    pub fn unusable(&self) -> Option<&str> {
        match self.compiled.as_ref() {
            Compiled::Unusable(why) => Some(why),
            Compiled::Program(_) => None,
        }
    }

    /// The fields of `object` and `oldObject` it reads, as paths of at most two segments
    /// (`metadata.labels`, `spec`); `*` when it hands the whole object on (`[object,
    /// oldObject].exists(o, ...)`), whose reads cannot be followed.
    pub fn object_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Compiled::Program(program) = self.compiled.as_ref() {
            object_reads(program.expression(), &mut out);
        }
        out
    }
}

impl Expression {
    /// The fields under the object's `spec` it reads (full paths: `spec.hostNetwork`) that no
    /// `has()` in it tests — neither that path, nor a shorter or longer one along it. In CEL,
    /// reading a field the object lacks is an error, and the API server leaves unset fields out
    /// (false and empty ones included).
    pub fn unguarded_spec_reads(&self) -> BTreeSet<String> {
        let (mut reads, mut guarded) = (BTreeSet::new(), BTreeSet::new());
        if let Compiled::Program(program) = self.compiled.as_ref() {
            spec_reads(program.expression(), &mut reads, &mut guarded);
        }
        let along = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."));
        reads.retain(|r| !guarded.iter().any(|g| along(r, g)));
        reads
    }
}

/// A `spec` path of a chain rooted at `object` or `oldObject`.
fn spec_path(root: &str, fields: &[&str]) -> Option<String> {
    (OBJECT_VARIABLES.contains(&root) && fields.len() >= 2 && fields[0] == "spec").then(|| fields.join("."))
}

fn spec_reads(expr: &IdedExpr, reads: &mut BTreeSet<String>, guarded: &mut BTreeSet<String>) {
    if let Expr::Select(select) = &expr.expr
        && select.test
    {
        // has(X.f) tests X.f, and reads X.
        if let Some((root, fields)) = selection_chain(expr)
            && let Some(path) = spec_path(root, &fields)
        {
            guarded.insert(path);
        }
        spec_reads(&select.operand, reads, guarded);
        return;
    }
    if let Some((root, fields)) = selection_chain(expr) {
        if let Some(path) = spec_path(root, &fields) {
            reads.insert(path);
        }
        return;
    }
    for child in children(expr) {
        spec_reads(child, reads, guarded);
    }
}

/// The expressions directly inside `expr`, for walks of the syntax tree.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Select(select) => vec![&select.operand],
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(call.args.iter()).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(entry_children).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(entry_children).collect(),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entry: &IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

const OBJECT_VARIABLES: [&str; 2] = ["object", "oldObject"];

/// The chain of field selections `expr` spells from a variable, root first, if it is one.
fn selection_chain(expr: &IdedExpr) -> Option<(&str, Vec<&str>)> {
    let mut fields = Vec::new();
    let mut at = expr;
    loop {
        match &at.expr {
            Expr::Select(select) => {
                fields.push(select.field.as_str());
                at = &select.operand;
            }
            Expr::Ident(name) => {
                fields.reverse();
                return Some((name, fields));
            }
            _ => return None,
        }
    }
}

fn object_reads(expr: &IdedExpr, out: &mut BTreeSet<String>) {
    if let Some((root, fields)) = selection_chain(expr) {
        if OBJECT_VARIABLES.contains(&root) {
            out.insert(if fields.is_empty() {
                "*".to_string()
            } else {
                fields.iter().take(2).copied().collect::<Vec<_>>().join(".")
            });
        }
        return;
    }
    for child in children(expr) {
        object_reads(child, out);
    }
}

fn compile_one(expression: &str) -> Compiled {
    let Some(env) = ENVIRONMENT.as_ref() else {
        return Compiled::Unusable("the CEL environment could not be built".into());
    };
    match env.compile(expression) {
        Ok(program) => {
            let references = program.references();
            if let Some(variable) = UNANSWERABLE_VARIABLES.iter().find(|v| references.has_variable(v)) {
                return Compiled::Unusable(format!("it uses `{variable}`, which only the API server can answer"));
            }
            Compiled::Program(Box::new(program))
        }
        Err(e) => Compiled::Unusable(format!(
            "cel-rust cannot parse it ({})",
            e.to_string().lines().next().unwrap_or("syntax error").trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kubelet_mirror_pod() -> (Value, Value) {
        let request = json!({
            "operation": "CREATE",
            "namespace": "kube-system",
            "name": "kube-apiserver-cp-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "system:node:cp-1", "groups": ["system:nodes", "system:authenticated"]},
        });
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kube-apiserver-cp-1", "namespace": "kube-system",
                         "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
        });
        (request, object)
    }

    fn outcome(expressions: &[&str]) -> ConditionOutcome {
        let conditions: Vec<(String, String)> =
            expressions.iter().enumerate().map(|(i, e)| (format!("c{i}"), e.to_string())).collect();
        let (request, object) = kubelet_mirror_pod();
        let context = RequestContext::new(&request, &object, &Value::Null);
        MatchConditions::compile(&conditions, &CompileCache::default()).evaluate(&context)
    }

    fn skipped_by(name: &str) -> ConditionOutcome {
        ConditionOutcome::Skipped { condition: name.into() }
    }

    #[test]
    fn each_operator_is_evaluated_not_read() {
        use ConditionOutcome::Called;
        let table: &[(&str, ConditionOutcome)] = &[
            // Mentions kube-system, and includes it: the webhook is called for it.
            ("request.namespace == 'kube-system'", Called),
            ("request.namespace != 'kube-system'", skipped_by("c0")),
            ("request.namespace in ['kube-system', 'kube-node-lease']", Called),
            ("!(request.namespace in ['kube-system', 'kube-node-lease'])", skipped_by("c0")),
            ("request.userInfo.username.startsWith('system:node:')", Called),
            ("!request.userInfo.username.startsWith('system:')", skipped_by("c0")),
            ("'system:nodes' in request.userInfo.groups", Called),
            ("!('system:nodes' in request.userInfo.groups)", skipped_by("c0")),
            ("has(object.metadata.labels) && object.metadata.labels['tier'] == 'control-plane'", Called),
            ("!has(object.metadata.labels) || !('tier' in object.metadata.labels)", skipped_by("c0")),
            ("!has(object.metadata.annotations)", Called),
            ("request.name.lowerAscii().startsWith('kube-apiserver')", Called),
            ("request.userInfo.groups.exists(g, g == 'system:masters')", skipped_by("c0")),
        ];
        for (expression, want) in table {
            assert_eq!(&outcome(&[expression]), want, "{expression}");
        }
    }

    #[test]
    fn errors_and_unanswerable_variables_are_unknown_never_excluded() {
        // A missing key errors in CEL as in the API server.
        let ConditionOutcome::Unknown { reason } = outcome(&["object.metadata.annotations['x'] == 'y'"]) else {
            panic!("a missing key must be unknown");
        };
        assert!(reason.contains("fails to evaluate"), "{reason}");
        let ConditionOutcome::Unknown { reason } = outcome(&["authorizer.requestResource.check('create').allowed()"])
        else {
            panic!("authorizer must be unknown");
        };
        assert!(reason.contains("`authorizer`"), "{reason}");
        let ConditionOutcome::Unknown { reason } = outcome(&["request.namespace =="]) else {
            panic!("a syntax error must be unknown");
        };
        assert!(reason.contains("cannot parse"), "{reason}");
        let ConditionOutcome::Unknown { reason } = outcome(&["request.namespace"]) else {
            panic!("a non-bool must be unknown");
        };
        assert!(reason.contains("not a bool"), "{reason}");
    }

    #[test]
    fn the_object_fields_an_expression_reads_come_from_its_syntax_tree() {
        let fields = |e: &str| -> Vec<String> {
            Expression::compile(e, &CompileCache::default()).object_fields().into_iter().collect()
        };
        assert_eq!(fields("has(object.metadata.labels) && 'team' in object.metadata.labels"), ["metadata.labels"]);
        assert_eq!(fields("object.spec.containers.all(c, c.image != '')"), ["spec.containers"]);
        assert_eq!(fields("object.metadata.labels['x'] == oldObject.metadata.labels['x']"), ["metadata.labels"]);
        assert_eq!(fields("[object, oldObject].exists(o, o != null)"), ["*"]);
        assert_eq!(fields("request.namespace == 'kube-system'"), Vec::<String>::new());
        // Mentioning a field in a string is not reading it.
        assert_eq!(fields("request.name != 'object.spec'"), Vec::<String>::new());
        assert_eq!(fields("object.kind == 'Pod' && has(object.status)"), ["kind", "status"]);
    }

    #[test]
    fn spec_fields_read_without_has_are_found_in_the_syntax_tree() {
        let unguarded = |e: &str| -> Vec<String> {
            Expression::compile(e, &CompileCache::default()).unguarded_spec_reads().into_iter().collect()
        };
        assert_eq!(unguarded("object.spec.hostNetwork == false"), ["spec.hostNetwork"]);
        assert_eq!(
            unguarded("!has(object.spec.hostNetwork) || object.spec.hostNetwork == false"),
            Vec::<String>::new()
        );
        assert_eq!(
            unguarded("has(object.spec.template) && object.spec.template.spec.volumes.size() < 3"),
            Vec::<String>::new(),
            "a test along the path guards it"
        );
        assert_eq!(
            unguarded("object.spec.containers.all(c, c.image != '') && object.spec.nodeName != ''"),
            ["spec.containers", "spec.nodeName"]
        );
        // Strictly has() tests only the last field, but a test anywhere along the path shows
        // the author thought of it: not reported.
        assert_eq!(unguarded("has(object.spec.x.y) && object.spec.x.y"), Vec::<String>::new());
        assert_eq!(unguarded("object.metadata.name != ''"), Vec::<String>::new());
    }

    #[test]
    fn one_false_condition_decides_over_errors_and_all_true_call() {
        // As the API server: a false condition skips even when another errors.
        assert_eq!(
            outcome(&["object.metadata.annotations['x'] == 'y'", "request.namespace != 'kube-system'"]),
            skipped_by("c1")
        );
        assert_eq!(outcome(&["request.operation == 'CREATE'", "request.kind.kind == 'Pod'"]), ConditionOutcome::Called);
        assert_eq!(outcome(&[]), ConditionOutcome::Called);
    }
}
