//! Anti-pattern: a global counter in the response, on WASIp2, where reuse is
//! serial: the `leaky-counter-p3` handler, exported to the other world.

#[path = "../../leaky-counter-p3/src/counter.rs"]
mod counter;

reprise::export_p2!(counter::Counter);
