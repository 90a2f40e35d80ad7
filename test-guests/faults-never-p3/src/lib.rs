//! The `faults` handler under no reuse.

reprise::export_p3!(faults::Faults, policy = reprise::ReusePolicy::never());
