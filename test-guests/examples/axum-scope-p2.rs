//! The axum-scope Router as a WASIp2 component (serial reuse, the p2
//! default).

reprise::export_p2!(service = test_guests::axum_scope::app);
