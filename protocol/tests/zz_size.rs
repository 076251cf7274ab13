#[test]
fn sizes() {
    use dhtd_protocol::node::*;
    println!("Envelope {}", std::mem::size_of::<Envelope>());
    println!("RateLimiterInput {}", std::mem::size_of::<RateLimiterInput>());
    println!("RoutingInput {}", std::mem::size_of::<RoutingInput>());
    println!("TransactionsInput {}", std::mem::size_of::<TransactionsInput>());
    println!("StoreInput {}", std::mem::size_of::<StoreInput>());
    println!("LookupsInput {}", std::mem::size_of::<LookupsInput>());
    println!("SupervisorInput {}", std::mem::size_of::<SupervisorInput>());
    println!("ApiEvent {}", std::mem::size_of::<ApiEvent>());
    println!("LogEvent {}", std::mem::size_of::<LogEvent>());
    println!("IoRequest {}", std::mem::size_of::<IoRequest>());
}
