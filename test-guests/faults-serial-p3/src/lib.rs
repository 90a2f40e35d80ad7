//! The `faults` handler under serial reuse.

reprise::export_p3!(faults::Faults, policy = reprise::ReusePolicy::serial());
