//! The export macros: the one place a component meets reprise.
//!
//! Each macro implements its world's export for a [`Handler`](crate::Handler)
//! type, routes every call through reprise's entry and exit (scope, policy),
//! and writes the reuse policy into the `reprise:reuse-policy` custom section.
//! They do nothing at run time beyond calling into `rt`.

/// Exports a [`Handler`](crate::Handler) as the WASIp3 `wasi:http/handler@0.3.0`
/// interface.
///
/// ```no_run
/// # #[derive(Default)] struct App;
/// # impl reprise::Handler for App {
/// #     async fn handle(&self, _: reprise::Request) -> impl reprise::IntoResponse { "" }
/// # }
/// // Reuse freely (the default):
/// reprise::export_p3!(App);
/// ```
///
/// With a [`ReusePolicy`](crate::ReusePolicy):
///
/// ```no_run
/// # #[derive(Default)] struct App;
/// # impl reprise::Handler for App {
/// #     async fn handle(&self, _: reprise::Request) -> impl reprise::IntoResponse { "" }
/// # }
/// reprise::export_p3!(App, policy = reprise::ReusePolicy::serial());
/// ```
#[macro_export]
macro_rules! export_p3 {
    ($handler:ty) => {
        $crate::export_p3!($handler, policy = $crate::ReusePolicy::concurrent());
    };
    ($handler:ty, policy = $policy:expr $(,)?) => {
        const _: () = {
            $crate::__reuse_policy_section!($policy);

            struct Export;

            impl $crate::__private::wasip3::exports::http::handler::Guest for Export {
                async fn handle(
                    request: $crate::__private::wasip3::http::types::Request,
                ) -> ::core::result::Result<
                    $crate::__private::wasip3::http::types::Response,
                    $crate::__private::wasip3::http::types::ErrorCode,
                > {
                    $crate::__private::p3::handle::<$handler>(&REPRISE_REUSE_POLICY, request).await
                }
            }

            $crate::__private::wasip3::http::service::export!(
                Export with_types_in $crate::__private::wasip3
            );
        };
    };
}

/// Exports a [`Handler`](crate::Handler) as the WASIp2
/// `wasi:http/incoming-handler@0.2` interface.
///
/// The handler is the same async code as for WASIp3; reprise drives it on its
/// own executor, one request per call. Without `policy = …` the policy is
/// [`ReusePolicy::serial`](crate::ReusePolicy::serial), which is what a p2
/// instance is anyway.
///
/// ```no_run
/// # #[derive(Default)] struct App;
/// # impl reprise::Handler for App {
/// #     async fn handle(&self, _: reprise::Request) -> impl reprise::IntoResponse { "" }
/// # }
/// reprise::export_p2!(App, policy = reprise::ReusePolicy::never());
/// ```
#[macro_export]
macro_rules! export_p2 {
    // A p2 export is never called concurrently: say so in the section.
    ($handler:ty) => {
        $crate::export_p2!($handler, policy = $crate::ReusePolicy::serial());
    };
    ($handler:ty, policy = $policy:expr $(,)?) => {
        const _: () = {
            $crate::__reuse_policy_section!($policy);

            struct Export;

            impl $crate::__private::wasip2::exports::http::incoming_handler::Guest for Export {
                fn handle(
                    request: $crate::__private::wasip2::http::types::IncomingRequest,
                    response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
                ) {
                    $crate::__private::p2::handle::<
                        $handler,
                        { REPRISE_REUSE_POLICY.retires_instances() },
                    >(&REPRISE_REUSE_POLICY, request, response_out)
                }
            }

            $crate::__private::wasip2::http::proxy::export!(
                Export with_types_in $crate::__private::wasip2
            );
        };
    };
}

/// Defines `REPRISE_REUSE_POLICY` and the custom section that carries it.
#[doc(hidden)]
#[macro_export]
macro_rules! __reuse_policy_section {
    ($policy:expr) => {
        const REPRISE_REUSE_POLICY: $crate::ReusePolicy = $policy;

        #[used]
        #[unsafe(link_section = "reprise:reuse-policy")]
        static REUSE_POLICY_SECTION: [u8; $crate::__private::SECTION_LEN] =
            REPRISE_REUSE_POLICY.to_section();
    };
}
