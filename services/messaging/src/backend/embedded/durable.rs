//! The embedded broker's durable subscriptions: the same acknowledgement, redelivery and
//! dead-letter behaviour as on JetStream, in memory. A queue per consumer name holds what its
//! subjects received until a handler settles it; a failed message comes back after the retry
//! delay, and after `max-deliver` attempts goes to the dead-letter subject. Nothing survives the
//! process: a restart starts with empty queues.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;

use super::{Backlog, Router, weight};
use crate::MsgError;
use crate::backend::{
    Durable, Envelope, Inbox, Settle, Settlement, backoff, count_retry, dead_letter_entries,
    dead_lettered,
};
use crate::subject;

/// One consumer's messages: waiting ones, and the handlers' wakers.
pub(super) struct Queue {
    spec: Durable,
    backlog: Backlog,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Messages waiting, with the attempt each will be.
    waiting: VecDeque<(Envelope, u64)>,
    /// Bytes of the waiting messages.
    bytes: usize,
    wakers: Vec<Waker>,
}

impl Queue {
    pub(super) fn new(spec: Durable, backlog: Backlog) -> Self {
        Self {
            spec,
            backlog,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain bookkeeping that a panic cannot leave half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the queue was made for `spec`'s subjects: a second subscriber of one name shares
    /// the queue, and must want the same.
    pub(super) fn takes_the_subjects_of(&self, spec: &Durable) -> bool {
        self.spec.subjects == spec.subjects
    }

    /// Whether the queue takes messages sent to `subject`.
    pub(super) fn takes(&self, subject: &str) -> bool {
        self.spec
            .subjects
            .iter()
            .any(|pattern| subject::matches(pattern, subject))
    }

    /// Adds a new message at the back; an error when the queue holds its backlog already (the
    /// sender is told, as nothing would be kept).
    pub(super) fn offer(&self, message: &Envelope) -> Result<(), MsgError> {
        let weight = weight(message);
        let mut state = self.lock();
        if state.waiting.len() >= self.backlog.messages || state.bytes + weight > self.backlog.bytes
        {
            return Err(MsgError::Other(format!(
                "the durable queue `{}` is full ({} messages or {} bytes waiting)",
                self.spec.name, self.backlog.messages, self.backlog.bytes
            )));
        }
        state.bytes += weight;
        state.waiting.push_back((message.clone(), 1));
        wake(state);
        Ok(())
    }

    /// Puts a message back at the front, for its attempt `deliveries` (a retry is not refused
    /// for the backlog: it was taken once).
    fn retry(&self, message: Envelope, deliveries: u64) {
        let mut state = self.lock();
        state.bytes += weight(&message);
        state.waiting.push_front((message, deliveries));
        wake(state);
    }
}

/// Wakes the handlers waiting on a queue, outside its lock.
fn wake(mut state: std::sync::MutexGuard<'_, State>) {
    let wakers = std::mem::take(&mut state.wakers);
    drop(state);
    for waker in wakers {
        waker.wake();
    }
}

/// A durable subscription's messages.
pub(super) struct DurableReceiver {
    queue: Arc<Queue>,
    router: Arc<Router>,
    drained: bool,
}

impl DurableReceiver {
    pub(super) fn new(queue: Arc<Queue>, router: Arc<Router>) -> Self {
        Self {
            queue,
            router,
            drained: false,
        }
    }
}

impl Stream for DurableReceiver {
    type Item = Envelope;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        if self.drained {
            return Poll::Ready(None);
        }
        let mut state = self.queue.lock();
        let Some((message, deliveries)) = state.waiting.pop_front() else {
            if !state.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                state.wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        };
        state.bytes = state.bytes.saturating_sub(weight(&message));
        drop(state);
        if deliveries > 1 {
            count_retry("redelivered");
        }
        let mut envelope = message.clone().for_attempt(deliveries);
        envelope.settle = Some(Settle(Arc::new(EmbeddedSettlement {
            queue: self.queue.clone(),
            router: self.router.clone(),
            message: Mutex::new(Some(message)),
            deliveries,
        })));
        Poll::Ready(Some(envelope))
    }
}

#[async_trait::async_trait]
impl Inbox for DurableReceiver {
    /// Takes no more messages; what waits stays for the next subscriber of the same name.
    async fn drain(&mut self) {
        self.drained = true;
    }
}

/// How one message of an embedded durable subscription is settled. Dropped unsettled (its
/// handler's task died), the message goes back to its queue for the next attempt.
struct EmbeddedSettlement {
    queue: Arc<Queue>,
    router: Arc<Router>,
    /// The message as it arrived; taken when settled.
    message: Mutex<Option<Envelope>>,
    /// This attempt's number, from 1.
    deliveries: u64,
}

impl EmbeddedSettlement {
    fn take(&self) -> Option<Envelope> {
        self.message
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait::async_trait]
impl Settlement for EmbeddedSettlement {
    async fn done(&self) {
        self.take();
    }

    async fn failed(&self, why: &str) {
        let Some(message) = self.take() else {
            return;
        };
        let spec = &self.queue.spec;
        if self.deliveries >= u64::from(spec.max_deliver) {
            let mut dead = message.clone();
            let entries = dead_letter_entries(why, self.deliveries, &message.subject);
            dead.metadata
                .extend(entries.map(|(name, value)| (name.to_owned(), value)));
            dead.metadata.sort();
            dead.subject = spec.dead_letter.clone();
            dead.reply_to = None;
            dead_lettered(&message.subject, self.deliveries, why, &spec.dead_letter);
            if let Err(err) = self.router.route(&dead) {
                tracing::warn!(
                    "the dead-letter subject `{}` took nothing: {err}",
                    spec.dead_letter
                );
            }
            return;
        }
        let (queue, deliveries) = (self.queue.clone(), self.deliveries + 1);
        let delay = backoff(spec.retry_delay, self.deliveries);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.retry(message, deliveries);
        });
    }
}

impl Drop for EmbeddedSettlement {
    fn drop(&mut self) {
        if let Some(message) = self.take() {
            self.queue.retry(message, self.deliveries + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::time::Duration;

    use futures::StreamExt as _;

    use super::*;
    use crate::backend::embedded::Embedded;
    use crate::backend::{
        Broker, DEAD_DELIVERIES, DEAD_REASON, DEAD_SUBJECT, DELIVERY_KEY, Subscription,
    };

    fn spec() -> Durable {
        Durable {
            name: "jobs".into(),
            subjects: vec!["jobs.>".into()],
            max_deliver: 2,
            dead_letter: "dead.jobs".into(),
            ack_wait: Duration::from_secs(1),
            retry_delay: Duration::from_millis(10),
            batch: 4,
        }
    }

    fn message(subject: &str, payload: &'static str) -> Envelope {
        Envelope {
            subject: subject.into(),
            payload: payload.into(),
            ..Envelope::default()
        }
    }

    async fn next(subscription: &mut Subscription) -> Envelope {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("a message in time")
            .unwrap()
    }

    fn meta<'a>(message: &'a Envelope, key: &str) -> Option<&'a str> {
        message
            .metadata
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    #[tokio::test]
    async fn failed_messages_come_back_then_go_to_the_dead_letter_subject() {
        let broker = Embedded::new(Backlog {
            messages: 4,
            bytes: 1 << 20,
        });
        let mut dead = broker.subscribe("dead.jobs", None).await.unwrap();
        let mut jobs = broker.subscribe_durable(&spec()).await.unwrap();
        broker.publish(message("jobs.a", "fine")).await.unwrap();
        broker.publish(message("jobs.b", "poison")).await.unwrap();

        let fine = next(&mut jobs).await;
        assert_eq!(
            (&fine.payload[..], meta(&fine, DELIVERY_KEY)),
            (&b"fine"[..], Some("1"))
        );
        fine.settle.clone().unwrap().0.done().await;
        for attempt in ["1", "2"] {
            let poison = next(&mut jobs).await;
            assert_eq!(&poison.payload[..], b"poison");
            assert_eq!(meta(&poison, DELIVERY_KEY), Some(attempt));
            let why = format!("failed at {attempt}");
            poison.settle.clone().unwrap().0.failed(&why).await;
        }
        let dead_letter = next(&mut dead).await;
        assert_eq!(&dead_letter.payload[..], b"poison");
        assert_eq!(meta(&dead_letter, DEAD_DELIVERIES), Some("2"));
        assert_eq!(meta(&dead_letter, DEAD_SUBJECT), Some("jobs.b"));
        assert_eq!(meta(&dead_letter, DEAD_REASON), Some("failed at 2"));

        // A message whose handler vanished without settling comes back for its next attempt.
        broker.publish(message("jobs.c", "orphan")).await.unwrap();
        drop(next(&mut jobs).await);
        let back = next(&mut jobs).await;
        assert_eq!(
            (&back.payload[..], meta(&back, DELIVERY_KEY)),
            (&b"orphan"[..], Some("2"))
        );
        back.settle.clone().unwrap().0.done().await;

        // A full queue refuses the sender rather than drop what it was given.
        for _ in 0..4 {
            broker.publish(message("jobs.d", "x")).await.unwrap();
        }
        let err = broker.publish(message("jobs.d", "x")).await.unwrap_err();
        assert!(
            err.to_string().contains("the durable queue `jobs` is full"),
            "{err}"
        );
        // A second subscriber of one name shares the queue, if it wants the same subjects.
        let other = Durable {
            subjects: vec!["other.>".into()],
            ..spec()
        };
        assert!(broker.subscribe_durable(&other).await.is_err());
    }
}
