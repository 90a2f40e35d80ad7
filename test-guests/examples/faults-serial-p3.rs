//! The `faults` handler under serial reuse.

reprise::export_p3!(
    test_guests::faults::Faults,
    policy = reprise::ReusePolicy::serial()
);
