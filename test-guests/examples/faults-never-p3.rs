//! The `faults` handler under no reuse.

reprise::export_p3!(
    test_guests::faults::Faults,
    policy = reprise::ReusePolicy::never()
);
