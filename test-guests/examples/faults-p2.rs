//! The `faults` handler as a WASIp2 component, under the p2 default
//! (serial) policy: a trap in a synchronous p2 handler must be contained
//! like a p3 one.

reprise::export_p2!(test_guests::faults::Faults);
