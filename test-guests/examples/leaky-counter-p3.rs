//! Anti-pattern: a global counter in the response. A fresh instance always
//! answers `you are visitor 1`; a reused one counts on, so the answer depends
//! on what the instance served before. `host-runner check` must flag it.

reprise::export_p3!(test_guests::leaky_counter::Counter);
