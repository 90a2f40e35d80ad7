//! The `faults` handler under the default concurrent reuse.

reprise::export_p3!(faults::Faults, policy = reprise::ReusePolicy::concurrent());
