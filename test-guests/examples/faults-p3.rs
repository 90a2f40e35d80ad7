//! The `faults` handler under the default concurrent reuse.

reprise::export_p3!(
    test_guests::faults::Faults,
    policy = reprise::ReusePolicy::concurrent()
);
