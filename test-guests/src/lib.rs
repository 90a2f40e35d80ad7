//! Code shared by several test components (each one an `[[example]]` of this
//! crate): the `faults` handler, exported under three reuse policies and on
//! WASIp2; the `axum_scope` router, exported in both worlds; the
//! `leaky_counter` handler, in both worlds. This library exports nothing
//! itself: a component is the example that names one of these with an
//! export macro.

pub mod axum_scope;
pub mod faults;
pub mod leaky_counter;
