//! Request-local values: statics whose value each request gets its own
//! copy of, stored in the request's scope (`scope.rs`) and dropped with
//! it. This module only names and types them; where they live, and when
//! they are dropped, is the scope's business.

use crate::scope::{OUTSIDE, Scope};
use std::fmt;
use std::rc::Rc;

/// A value that each request gets its own copy of.
///
/// Declare one with [`request_local!`](crate::request_local). The first use
/// in a request creates the value; the request's end drops it. Concurrent
/// requests on one instance each see their own.
pub struct RequestLocal<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> RequestLocal<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> Self {
        RequestLocal { init }
    }

    /// Calls `f` with this request's value, creating it on first use.
    ///
    /// ```no_run
    /// reprise::request_local! {
    ///     static HITS: std::cell::Cell<u32> = std::cell::Cell::new(0);
    /// }
    /// # async fn handler() {
    /// HITS.with(|hits| hits.set(hits.get() + 1)); // 1, in every request
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a request: there is no request to own the value, and sharing
    /// one silently is the bug this type exists to prevent.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let value = self.value().unwrap_or_else(|| panic!("{OUTSIDE}"));
        f(&value)
    }

    /// Like [`RequestLocal::with`], but `None` outside a request: for code
    /// that runs both inside and outside requests, such as a logger.
    ///
    /// ```
    /// reprise::request_local! {
    ///     static TRACE: std::cell::Cell<u32> = std::cell::Cell::new(0);
    /// }
    /// // Not in a request here:
    /// assert_eq!(TRACE.try_with(|trace| trace.get()), None);
    /// ```
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.value().map(|value| f(&value))
    }

    fn value(&'static self) -> Option<Rc<T>> {
        // The static's address is its identity: unique, and stable for the
        // whole instance.
        let key = self as *const Self as usize;
        let scope = Scope::current()?;
        let value = scope.local(key, || Rc::new((self.init)()));
        Some(
            value
                .downcast()
                .expect("request-local keys are unique per type"),
        )
    }
}

impl<T: 'static> fmt::Debug for RequestLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestLocal { .. }")
    }
}

/// Declares values that each request gets its own copy of.
///
/// ```no_run
/// use std::cell::RefCell;
///
/// reprise::request_local! {
///     /// The signed-in user, once the request has authenticated.
///     static USER: RefCell<Option<String>> = RefCell::new(None);
/// }
///
/// # async fn handler() {
/// USER.with(|user| *user.borrow_mut() = Some("ada".into()));
/// // ... later in the same request, even after awaits:
/// let name = USER.with(|user| user.borrow().clone());
/// # }
/// ```
///
/// Mutation goes through interior mutability (`Cell`, `RefCell`), as with
/// `thread_local!`: the value is shared by the request's own tasks.
#[macro_export]
macro_rules! request_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;)+) => {
        $(
            $(#[$attr])*
            $vis static $name: $crate::RequestLocal<$ty> = $crate::RequestLocal::new(|| $init);
        )+
    };
}
