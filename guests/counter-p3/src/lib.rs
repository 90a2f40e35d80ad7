//! Instance state next to request state. `served` counts every request this
//! instance has handled; `TAG` is fresh for each request and stays its own
//! while other requests interleave on the same instance.

use reprise::{Handler, IntoResponse, Request, RequestContext, request_local};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
struct Counter {
    /// Instance state: shared by every request this instance serves.
    served: Cell<u64>,
    /// Request values dropped so far, counted by `Tag`'s destructor.
    dropped: Rc<Cell<u64>>,
}

/// A request's own tag, which counts its drop at the end of its request.
struct Tag {
    value: String,
    dropped: Rc<Cell<u64>>,
}

impl Drop for Tag {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

request_local! {
    /// Set by each request; no request ever sees another's.
    static TAG: RefCell<Option<Tag>> = RefCell::new(None);
}

impl Handler for Counter {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        self.served.set(self.served.get() + 1);
        let mine = RequestContext::current().id().to_owned();
        let tag = Tag {
            value: mine.clone(),
            dropped: self.dropped.clone(),
        };
        let fresh = TAG.with(|slot| slot.replace(Some(tag)).is_none());
        // Await a few times so that concurrent requests interleave with this one.
        for _ in 0..5 {
            reprise::sleep(Duration::from_millis(2)).await;
        }
        let seen = TAG.with(|slot| slot.borrow().as_ref().map(|tag| tag.value.clone()));
        format!(
            "request {mine} fresh={fresh} seen={}\nserved={} dropped={}\n",
            seen.unwrap_or_default(),
            self.served.get(),
            self.dropped.get(),
        )
    }
}

reprise::export_p3!(Counter);
