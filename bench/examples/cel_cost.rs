//! What one matchCondition costs: compiling it, and evaluating it against one request.
fn main() {
    let conditions = vec![("c".to_string(), "!request.userInfo.username.startsWith('system:')".to_string())];
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        let cache = cpkit::webhooks::conditions::CompileCache::default();
        std::hint::black_box(cpkit::webhooks::conditions::MatchConditions::compile(&conditions, &cache));
    }
    println!("compile: {:?} each", started.elapsed() / 1000);
    let compiled = cpkit::webhooks::conditions::MatchConditions::compile(&conditions, &Default::default());
    let target = &cpkit::webhooks::requests::TARGETS[0];
    let input = target.requests[0].admission(&target.object);
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        let context =
            cpkit::webhooks::conditions::RequestContext::new(&input.request, &input.object, &input.old_object);
        std::hint::black_box(context);
    }
    println!("variables for CEL: {:?} each", started.elapsed() / 1000);
    let context = cpkit::webhooks::conditions::RequestContext::new(&input.request, &input.object, &input.old_object);
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(compiled.evaluate(&context));
    }
    println!("evaluate: {:?} each", started.elapsed() / 1000);
}
