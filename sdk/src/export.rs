//! The export macros: the one place a component meets reprise.
//!
//! Each macro implements its world's export for a [`Handler`](crate::Handler)
//! type (or, with the `tower` feature, a tower service), routes every call
//! through reprise's entry and exit (scope, policy), and writes the reuse
//! policy into the `reprise:reuse-policy` custom section.
//! They do nothing at run time beyond calling into the world layer (`world/`).

/// Exports a handler as the WASIp3 `wasi:http/handler@0.3.0` interface.
///
/// The shortest form takes one async function from [`Request`](crate::Request)
/// to any [`IntoResponse`](crate::IntoResponse); it has no instance state,
/// so nothing it does can leak into the next request except through
/// globals:
///
/// ```no_run
/// use reprise::{IntoResponse, Request};
///
/// reprise::export_p3!(async fn hello(_request: Request) -> impl IntoResponse {
///     "Hello, WASI!\n"
/// });
/// ```
///
/// A function defined elsewhere is exported with `handler = name`, and
/// either form takes `policy = …` after it. For instance state, export a
/// [`Handler`](crate::Handler) type:
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
///
/// With the `tower` feature, `service = make` exports the tower service
/// (an axum `Router`, say) that the function `make` builds, once per
/// instance; `policy = …` works the same:
///
/// ```ignore
/// fn app() -> axum::Router {
///     axum::Router::new().route("/", axum::routing::get(|| async { "Hello, axum!" }))
/// }
///
/// reprise::export_p3!(service = app);
/// ```
#[macro_export]
macro_rules! export_p3 {
    ($(#[$attr:meta])* async fn $name:ident ($($params:tt)*) $(-> $ret:ty)? $body:block
        $(, policy = $policy:expr)? $(,)?) => {
        $(#[$attr])*
        async fn $name($($params)*) $(-> $ret)? $body
        $crate::export_p3!(handler = $name $(, policy = $policy)?);
    };
    (handler = $function:expr $(,)?) => {
        $crate::export_p3!(handler = $function, policy = $crate::ReusePolicy::concurrent());
    };
    (handler = $function:expr, policy = $policy:expr $(,)?) => {
        $crate::__export_p3!(|| $crate::__private::FnHandler($function), $policy);
    };
    (service = $make:expr $(,)?) => {
        $crate::export_p3!(service = $make, policy = $crate::ReusePolicy::concurrent());
    };
    (service = $make:expr, policy = $policy:expr $(,)?) => {
        $crate::__export_p3!(
            || $crate::__private::ServiceHandler::new(($make)()),
            $policy
        );
    };
    ($handler:ty) => {
        $crate::export_p3!($handler, policy = $crate::ReusePolicy::concurrent());
    };
    ($handler:ty, policy = $policy:expr $(,)?) => {
        $crate::__export_p3!(<$handler as ::core::default::Default>::default, $policy);
    };
}

/// The body of [`export_p3!`]: `$make` builds the instance's handler.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_p3 {
    ($make:expr, $policy:expr) => {
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
                    $crate::__private::p3::handle(&REPRISE_REUSE_POLICY, $make, request).await
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
///
/// `async fn …`, `handler = function` and `service = make` work as with
/// [`export_p3!`].
#[macro_export]
macro_rules! export_p2 {
    ($(#[$attr:meta])* async fn $name:ident ($($params:tt)*) $(-> $ret:ty)? $body:block
        $(, policy = $policy:expr)? $(,)?) => {
        $(#[$attr])*
        async fn $name($($params)*) $(-> $ret)? $body
        $crate::export_p2!(handler = $name $(, policy = $policy)?);
    };
    (handler = $function:expr $(,)?) => {
        $crate::export_p2!(handler = $function, policy = $crate::ReusePolicy::serial());
    };
    (handler = $function:expr, policy = $policy:expr $(,)?) => {
        $crate::__export_p2!(|| $crate::__private::FnHandler($function), $policy);
    };
    // A p2 export is never called concurrently: say so in the section.
    (service = $make:expr $(,)?) => {
        $crate::export_p2!(service = $make, policy = $crate::ReusePolicy::serial());
    };
    (service = $make:expr, policy = $policy:expr $(,)?) => {
        $crate::__export_p2!(
            || $crate::__private::ServiceHandler::new(($make)()),
            $policy
        );
    };
    ($handler:ty) => {
        $crate::export_p2!($handler, policy = $crate::ReusePolicy::serial());
    };
    ($handler:ty, policy = $policy:expr $(,)?) => {
        $crate::__export_p2!(<$handler as ::core::default::Default>::default, $policy);
    };
}

/// The body of [`export_p2!`]: `$make` builds the instance's handler.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_p2 {
    ($make:expr, $policy:expr) => {
        const _: () =
            {
                $crate::__reuse_policy_section!($policy);

                struct Export;

                impl $crate::__private::wasip2::exports::http::incoming_handler::Guest for Export {
                    fn handle(
                        request: $crate::__private::wasip2::http::types::IncomingRequest,
                        response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
                    ) {
                        $crate::__private::p2::handle::<
                            _,
                            { REPRISE_REUSE_POLICY.retires_instances() },
                        >(&REPRISE_REUSE_POLICY, $make, request, response_out)
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
