//! Anti-pattern: a global counter in the response, on WASIp2, where reuse is
//! serial: the `leaky-counter-p3` handler, exported to the other world.

reprise::export_p2!(test_guests::leaky_counter::Counter);
