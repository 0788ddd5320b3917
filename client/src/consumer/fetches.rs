//! Where a consumer's fetches run: in the task that waits in `poll` while it waits, in a task of their own
//! while it does not.
//!
//! Why: with each fetch a spawned task, an answer crossed two tasks after h2's connection task read it from the
//! socket (the fetch's task, then the `poll`ing task, woken through a join set), each a wake and, on a busy
//! machine, a context switch. Here a fetch is a future in one `FuturesUnordered`: while `poll` waits, it polls
//! them itself, so an answer wakes the `poll`ing task straight from h2's connection task.
//!
//! What the spawned tasks gave that must stay: a fetch keeps going while the application is not in `poll`. Its
//! request leaves at once (the prefetch travels while the records of the last answer are handled), and its
//! answer is read off the connection as it arrives: unread DATA holds the connection's HTTP/2 window, and a
//! consumer that stops polling with answers unread would stall every other call on the connection it shares
//! (a producer's acks, which the application may be waiting for before it polls again). So between polls the
//! same futures are driven by a driver task; the two hand over through one mutex-guarded state, and whoever
//! polled the futures last is the one their wakes reach.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::stream::{FuturesUnordered, StreamExt};

type Fetch<T> = Abortable<Pin<Box<dyn Future<Output = T> + Send>>>;

/// The fetches in flight, and what has come of those that ended while the driver task ran them.
pub(super) struct Fetches<T> {
    shared: Arc<Mutex<Shared<T>>>,
    is_driver_started: bool,
}

struct Shared<T> {
    running: FuturesUnordered<Fetch<T>>,
    /// Outcomes the driver task took while nobody was in `poll`, oldest first.
    ended: VecDeque<T>,
    /// Set while a `poll` polls the fetches itself: the driver task leaves them alone then.
    is_polled_by_consumer: bool,
    /// The driver task's waker, to hand the fetches back to it when a `poll` ends.
    driver: Option<Waker>,
    /// The consumer is gone: the driver task ends.
    is_closed: bool,
}

/// What [`Fetches::next`] found.
pub(super) enum Next<T> {
    Ended(T),
    /// No fetch is running.
    None,
}

impl<T: Send + 'static> Fetches<T> {
    pub(super) fn new() -> Self {
        let shared = Shared {
            running: FuturesUnordered::new(),
            ended: VecDeque::new(),
            is_polled_by_consumer: false,
            driver: None,
            is_closed: false,
        };
        Self { shared: Arc::new(Mutex::new(shared)), is_driver_started: false }
    }

    /// Starts `fetch`; its handle aborts it (an aborted fetch's outcome never comes out of [`Self::next`]).
    /// Needs a tokio runtime (the driver task is spawned on the first call).
    pub(super) fn start(&mut self, fetch: impl Future<Output = T> + Send + 'static) -> AbortHandle {
        if !self.is_driver_started {
            self.is_driver_started = true;
            tokio::spawn(drive(Arc::clone(&self.shared)));
        }
        let (handle, registration) = AbortHandle::new_pair();
        let fetch: Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(fetch);
        let mut shared = lock(&self.shared);
        shared.running.push(Abortable::new(fetch, registration));
        // Outside `poll` the driver sends the request now; inside, `poll` polls it before it returns.
        if !shared.is_polled_by_consumer {
            if let Some(driver) = &shared.driver {
                driver.wake_by_ref();
            }
        }
        handle
    }

    /// Marks the fetches as polled by the consumer until the returned guard drops (when `poll` returns or is
    /// cancelled), which hands them back to the driver task.
    pub(super) fn polled_here(&self) -> PolledHere<T> {
        lock(&self.shared).is_polled_by_consumer = true;
        PolledHere { shared: Arc::clone(&self.shared) }
    }

    /// Waits for the next fetch to end, polling the fetches in this task. Cancel-safe: an outcome is taken only
    /// when this returns it.
    pub(super) async fn next(&mut self, _here: &PolledHere<T>) -> Next<T> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next outcome that is already there, if any, after polling every fetch once (so fetches started since
    /// the last poll send their requests now).
    pub(super) fn try_next(&mut self, _here: &PolledHere<T>) -> Option<T> {
        let waker = futures_util::task::noop_waker();
        // A no-op waker is enough: `FuturesUnordered` gives each fetch a waker of its own that queues it, and
        // whoever polls next (this consumer's `next`, or the driver task, which the guard wakes) takes the queue.
        match self.poll_next(&mut Context::from_waker(&waker)) {
            Poll::Ready(Next::Ended(outcome)) => Some(outcome),
            Poll::Ready(Next::None) | Poll::Pending => None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next<T>> {
        let mut shared = lock(&self.shared);
        if let Some(outcome) = shared.ended.pop_front() {
            return Poll::Ready(Next::Ended(outcome));
        }
        loop {
            match shared.running.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(outcome))) => return Poll::Ready(Next::Ended(outcome)),
                // A seek or an unassignment aborted it: nothing to report.
                Poll::Ready(Some(Err(Aborted))) => {}
                Poll::Ready(None) => return Poll::Ready(Next::None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> Drop for Fetches<T> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.is_closed = true;
        if let Some(driver) = shared.driver.take() {
            driver.wake();
        }
    }
}

/// Gives the fetches back to the driver task when a `poll` returns or is cancelled.
pub(super) struct PolledHere<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> Drop for PolledHere<T> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.is_polled_by_consumer = false;
        if let Some(driver) = &shared.driver {
            driver.wake_by_ref();
        }
    }
}

/// The driver task: polls the fetches whenever no `poll` does, keeping what ends for the next `poll`.
async fn drive<T>(shared: Arc<Mutex<Shared<T>>>) {
    std::future::poll_fn(|cx| {
        let mut shared = lock(&shared);
        if shared.is_closed {
            return Poll::Ready(());
        }
        if !shared.driver.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            shared.driver = Some(cx.waker().clone());
        }
        if shared.is_polled_by_consumer {
            return Poll::Pending;
        }
        while let Poll::Ready(Some(ended)) = shared.running.poll_next_unpin(cx) {
            if let Ok(outcome) = ended {
                shared.ended.push_back(outcome);
            }
        }
        Poll::Pending
    })
    .await
}

/// The state is a few flags and queues, consistent after every step: a panic elsewhere leaves nothing half done.
fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
