//! The axum-scope Router as a WASIp3 component, where requests interleave
//! on one instance.

reprise::export_p3!(service = test_guests::axum_scope::app);
