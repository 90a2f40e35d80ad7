//! Other bodies as a [`Body`](crate::Body)'s stream: another crate's
//! `http_body::Body`, a `Stream` of chunks, and a world's [`Source`]. Each
//! turns its errors into [`BodyError`]s; none buffers.

use super::{BoxError, Next, Source};
use crate::BodyError;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// `error` as a [`BodyError`]: itself if it is one, else a `400` with its
/// message.
fn from_box(error: BoxError) -> BodyError {
    match error.downcast::<BodyError>() {
        Ok(error) => *error,
        Err(error) => BodyError::new(error.to_string()),
    }
}

/// Another crate's body, its errors turned into [`BodyError`]s.
pub(super) struct Foreign<B>(pub(super) B);

impl<B> http_body::Body for Foreign<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next> {
        // SAFETY: `self.0` is never moved out of the pinned `Foreign`.
        let body = unsafe { self.map_unchecked_mut(|foreign| &mut foreign.0) };
        body.poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(|e| from_box(e.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A `Stream` of chunks as a body.
pub(super) struct FromStream<S>(pub(super) Pin<Box<S>>);

impl<S, T, E> http_body::Body for FromStream<S>
where
    S: futures_core::Stream<Item = Result<T, E>>,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next> {
        self.0.as_mut().poll_next(cx).map(|item| {
            item.map(|chunk| {
                chunk
                    .map(|chunk| Frame::data(chunk.into()))
                    .map_err(|e| from_box(e.into()))
            })
        })
    }

    fn size_hint(&self) -> SizeHint {
        let (lower, upper) = self.0.size_hint();
        // A stream counts chunks, not bytes: only "no more chunks" carries over.
        if upper == Some(0) && lower == 0 {
            SizeHint::with_exact(0)
        } else {
            SizeHint::new()
        }
    }
}

/// A [`Source`] as a poll-based body: the read in flight owns the source,
/// and hands it back with the frame.
pub(super) struct Pull<S> {
    pub(super) state: PullState<S>,
    pub(super) hint: SizeHint,
}

type PullRead<S> = Pin<Box<dyn Future<Output = (S, Next)>>>;

pub(super) enum PullState<S> {
    Idle(S),
    Reading(PullRead<S>),
    Ended,
}

impl<S: Source> http_body::Body for Pull<S> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, PullState::Ended) {
                PullState::Idle(mut source) => {
                    this.state = PullState::Reading(Box::pin(async move {
                        let frame = source.next_frame().await;
                        (source, frame)
                    }));
                }
                PullState::Reading(mut read) => {
                    let Poll::Ready((source, frame)) = read.as_mut().poll(cx) else {
                        this.state = PullState::Reading(read);
                        return Poll::Pending;
                    };
                    if frame.is_some() {
                        this.state = PullState::Idle(source);
                    }
                    this.hint = match &frame {
                        Some(Ok(frame)) => shrink(&this.hint, frame),
                        _ => SizeHint::with_exact(0),
                    };
                    return Poll::Ready(frame);
                }
                PullState::Ended => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, PullState::Ended)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// What is left of `hint` once `frame` has been read.
fn shrink(hint: &SizeHint, frame: &Frame<Bytes>) -> SizeHint {
    let read = frame.data_ref().map_or(0, |bytes| bytes.len() as u64);
    let mut left = SizeHint::new();
    if let Some(upper) = hint.upper() {
        left.set_upper(upper.saturating_sub(read));
    }
    left.set_lower(hint.lower().saturating_sub(read));
    left
}
