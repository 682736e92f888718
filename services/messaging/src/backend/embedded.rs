//! The in-process broker: NATS subject semantics (wildcards, queue groups, no-responders for
//! requests nobody listens to) without a server, for `cargo tempo dev` and single-process use.
//! Like core NATS it holds nothing: a message nobody is subscribed to is gone, and a subscriber
//! that falls behind (more messages, or more bytes, waiting than its [`Backlog`] allows) loses the
//! newest ones (NATS calls it a slow consumer). Durable subscriptions ([`durable`]) keep their
//! messages in memory until they are handled.

mod durable;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::{Broker, Durable, Envelope, Inbox, Subscription};
use crate::MsgError;
use crate::subject;

/// How much a subscription may have waiting before new messages are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// Messages.
    pub(crate) messages: usize,
    /// Bytes of subjects, headers and payloads.
    pub(crate) bytes: usize,
}

/// What a message weighs in a backlog: its bytes, and a little for the envelope itself, so that
/// empty messages count too.
fn weight(message: &Envelope) -> usize {
    let headers: usize = message
        .metadata
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    64 + message.subject.len() + message.payload.len() + headers
}

/// The in-process broker.
pub(crate) struct Embedded {
    router: Arc<Router>,
    next_inbox: AtomicU64,
}

/// Where a message goes: the subscriptions that match it, and the durable queues that take it.
struct Router {
    subscriptions: Mutex<Subscriptions>,
    /// Durable subscriptions' queues, by consumer name.
    queues: Mutex<HashMap<String, Arc<durable::Queue>>>,
    backlog: Backlog,
}

#[derive(Default)]
struct Subscriptions {
    next_id: u64,
    list: Vec<Entry>,
    /// Per queue group, how many messages it has been given: picks the next member in turn.
    turns: HashMap<String, usize>,
}

struct Entry {
    id: u64,
    pattern: String,
    queue: Option<String>,
    sender: Sender,
}

/// Where a subscription's messages go, and how many bytes of them wait there.
#[derive(Clone)]
struct Sender {
    messages: mpsc::Sender<Envelope>,
    waiting_bytes: Arc<AtomicUsize>,
}

impl Subscriptions {
    /// The subscriptions that get a message sent to `subject`: every plain one that matches,
    /// and one member of each matching queue group.
    fn receivers(&mut self, subject: &str) -> Vec<Sender> {
        let mut receivers = Vec::new();
        let mut groups: HashMap<&str, Vec<&Sender>> = HashMap::new();
        for subscription in &self.list {
            if !subject::matches(&subscription.pattern, subject) {
                continue;
            }
            match &subscription.queue {
                None => receivers.push(subscription.sender.clone()),
                Some(queue) => groups
                    .entry(queue.as_str())
                    .or_default()
                    .push(&subscription.sender),
            }
        }
        for (queue, members) in groups {
            let turn = self.turns.entry(queue.to_owned()).or_default();
            receivers.push(members[*turn % members.len()].clone());
            *turn = turn.wrapping_add(1);
        }
        receivers
    }
}

impl Embedded {
    /// A broker whose subscriptions (and durable queues) each hold at most `backlog`.
    pub(crate) fn new(backlog: Backlog) -> Self {
        Self {
            router: Arc::new(Router {
                subscriptions: Mutex::default(),
                queues: Mutex::default(),
                backlog,
            }),
            next_inbox: AtomicU64::new(0),
        }
    }
}

impl Router {
    fn subscriptions(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        // The lock guards plain bookkeeping that a panic cannot leave half-done.
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<durable::Queue>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `message` to the durable queues that take it, then to the subscriptions; whether
    /// anyone got it. A full durable queue is an error for the sender.
    fn route(&self, message: &Envelope) -> Result<bool, MsgError> {
        let queues: Vec<Arc<durable::Queue>> = self
            .queues()
            .values()
            .filter(|queue| queue.takes(&message.subject))
            .cloned()
            .collect();
        for queue in &queues {
            queue.offer(message)?;
        }
        Ok(self.deliver(message) || !queues.is_empty())
    }

    fn deliver(&self, message: &Envelope) -> bool {
        let receivers = self.subscriptions().receivers(&message.subject);
        let delivered = !receivers.is_empty();
        let weight = weight(message);
        for receiver in receivers {
            let limit = self.backlog.bytes;
            let within = receiver
                .waiting_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bytes| {
                    Some(bytes + weight).filter(|total| *total <= limit)
                })
                .is_ok();
            let sent = within
                && match receiver.messages.try_send(message.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        receiver.waiting_bytes.fetch_sub(weight, Ordering::AcqRel);
                        false
                    }
                    // A drained subscription takes no more.
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        receiver.waiting_bytes.fetch_sub(weight, Ordering::AcqRel);
                        continue;
                    }
                };
            if !sent {
                let Backlog { messages, bytes } = self.backlog;
                tracing::warn!(
                    subject = message.subject,
                    "a subscriber has {messages} messages or {bytes} bytes waiting; dropping a message"
                );
            }
        }
        delivered
    }
}

#[async_trait::async_trait]
impl Broker for Embedded {
    async fn publish(&self, message: Envelope) -> Result<(), MsgError> {
        if !self.router.route(&message)?
            && let Some(reply_to) = &message.reply_to
        {
            self.router.deliver(&Envelope {
                subject: reply_to.clone(),
                no_responders: true,
                ..Envelope::default()
            });
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        pattern: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, MsgError> {
        let (sender, receiver) = mpsc::channel(self.router.backlog.messages.max(1));
        let waiting_bytes = Arc::new(AtomicUsize::new(0));
        let mut subscriptions = self.router.subscriptions();
        let id = subscriptions.next_id;
        subscriptions.next_id += 1;
        subscriptions.list.push(Entry {
            id,
            pattern: pattern.to_owned(),
            queue: queue.map(str::to_owned),
            sender: Sender {
                messages: sender,
                waiting_bytes: waiting_bytes.clone(),
            },
        });
        Ok(Box::new(Receiver {
            id,
            receiver,
            waiting_bytes,
            router: self.router.clone(),
        }))
    }

    async fn subscribe_durable(&self, spec: &Durable) -> Result<Subscription, MsgError> {
        let queue = {
            let mut queues = self.router.queues();
            let queue = queues.entry(spec.name.clone()).or_insert_with(|| {
                Arc::new(durable::Queue::new(spec.clone(), self.router.backlog))
            });
            if !queue.takes_the_subjects_of(spec) {
                return Err(MsgError::Other(format!(
                    "the durable consumer `{}` takes other subjects already",
                    spec.name
                )));
            }
            queue.clone()
        };
        Ok(Box::new(durable::DurableReceiver::new(
            queue,
            self.router.clone(),
        )))
    }

    async fn flush(&self) -> Result<(), MsgError> {
        Ok(())
    }

    fn new_inbox(&self) -> String {
        format!(
            "_INBOX.tempo.{}",
            self.next_inbox.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A subscription's stream of messages; dropping it unsubscribes.
struct Receiver {
    id: u64,
    receiver: mpsc::Receiver<Envelope>,
    waiting_bytes: Arc<AtomicUsize>,
    router: Arc<Router>,
}

impl Receiver {
    fn unsubscribe(&self) {
        self.router.subscriptions().list.retain(|s| s.id != self.id);
    }
}

impl Stream for Receiver {
    type Item = Envelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        let next = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(message)) = &next {
            self.waiting_bytes
                .fetch_sub(weight(message), Ordering::AcqRel);
        }
        next
    }
}

#[async_trait::async_trait]
impl Inbox for Receiver {
    async fn drain(&mut self) {
        // Nothing new is routed here; what waits is still received, then the stream ends.
        self.unsubscribe();
        self.receiver.close();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::time::Duration;

    use futures::StreamExt as _;

    use super::*;
    use crate::backend::request;

    fn message(subject: &str, payload: &'static str) -> Envelope {
        Envelope {
            subject: subject.into(),
            payload: payload.into(),
            ..Envelope::default()
        }
    }

    const BACKLOG: Backlog = Backlog {
        messages: 64,
        bytes: 1 << 20,
    };

    async fn next(stream: &mut Subscription) -> Option<Envelope> {
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn wildcard_subscriptions_receive_what_matches() {
        let broker = Embedded::new(BACKLOG);
        let mut star = broker.subscribe("orders.*", None).await.unwrap();
        let mut rest = broker.subscribe("orders.>", None).await.unwrap();
        broker.publish(message("orders.new", "a")).await.unwrap();
        broker.publish(message("orders.new.eu", "b")).await.unwrap();
        broker.publish(message("invoices.new", "c")).await.unwrap();

        assert_eq!(next(&mut star).await.unwrap().payload, "a");
        assert_eq!(next(&mut star).await, None);
        assert_eq!(next(&mut rest).await.unwrap().payload, "a");
        assert_eq!(next(&mut rest).await.unwrap().payload, "b");
        assert_eq!(next(&mut rest).await, None);
    }

    #[tokio::test]
    async fn a_queue_group_shares_messages_and_plain_subscribers_see_all() {
        let broker = Embedded::new(BACKLOG);
        let mut first = broker.subscribe("jobs", Some("workers")).await.unwrap();
        let mut second = broker.subscribe("jobs", Some("workers")).await.unwrap();
        let mut watcher = broker.subscribe("jobs", None).await.unwrap();
        for _ in 0..10 {
            broker.publish(message("jobs", "job")).await.unwrap();
        }
        let mut counts = [0, 0, 0];
        for (count, stream) in counts
            .iter_mut()
            .zip([&mut first, &mut second, &mut watcher])
        {
            while next(stream).await.is_some() {
                *count += 1;
            }
        }
        assert_eq!(counts, [5, 5, 10]);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes() {
        let broker = Embedded::new(BACKLOG);
        let stream = broker.subscribe("jobs", None).await.unwrap();
        drop(stream);
        assert!(broker.router.subscriptions().list.is_empty());
    }

    #[tokio::test]
    async fn a_backlog_is_bounded_by_messages_and_by_bytes() {
        let broker = Embedded::new(Backlog {
            messages: 3,
            bytes: 1000,
        });
        let mut slow = broker.subscribe("jobs", None).await.unwrap();
        for _ in 0..5 {
            broker.publish(message("jobs", "small")).await.unwrap();
        }
        let mut kept = 0;
        while next(&mut slow).await.is_some() {
            kept += 1;
        }
        assert_eq!(kept, 3, "three messages fit");

        let big = Envelope {
            subject: "jobs".into(),
            payload: vec![b'x'; 600].into(),
            ..Envelope::default()
        };
        broker.publish(big.clone()).await.unwrap();
        broker.publish(big.clone()).await.unwrap();
        assert!(next(&mut slow).await.is_some());
        assert_eq!(next(&mut slow).await, None, "the second is over the bytes");
        // Received messages free their bytes.
        broker.publish(big).await.unwrap();
        assert!(next(&mut slow).await.is_some());
    }

    #[tokio::test]
    async fn a_drained_subscription_delivers_what_waits_and_then_ends() {
        let broker = Embedded::new(BACKLOG);
        let mut first = broker.subscribe("jobs", Some("workers")).await.unwrap();
        let mut second = broker.subscribe("jobs", Some("workers")).await.unwrap();
        broker.publish(message("jobs", "a")).await.unwrap();
        broker.publish(message("jobs", "b")).await.unwrap();
        first.drain().await;
        broker.publish(message("jobs", "c")).await.unwrap();
        assert_eq!(next(&mut first).await.unwrap().payload, "a");
        assert_eq!(first.next().await, None, "ended after what was waiting");
        assert_eq!(next(&mut second).await.unwrap().payload, "b");
        assert_eq!(
            next(&mut second).await.unwrap().payload,
            "c",
            "the group's rest"
        );
    }

    #[tokio::test]
    async fn requests_get_replies_or_say_why_not() {
        let broker = Arc::new(Embedded::new(BACKLOG));
        let mut service = broker.subscribe("greet", None).await.unwrap();
        let responder = broker.clone();
        tokio::spawn(async move {
            while let Some(request) = service.next().await {
                for answer in ["hello", "again"] {
                    let reply = message(request.reply_to.as_deref().unwrap(), answer);
                    responder.publish(reply).await.unwrap();
                }
            }
        });
        let timeout = Duration::from_secs(5);
        let replies = request(&*broker, message("greet", "hi"), timeout, 1)
            .await
            .unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].payload, "hello");
        let replies = request(&*broker, message("greet", "hi"), timeout, 2)
            .await
            .unwrap();
        assert_eq!(replies.len(), 2);

        let err = request(&*broker, message("nobody", "hi"), timeout, 1)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no one is subscribed to `nobody`");

        let _silent = broker.subscribe("silent", None).await.unwrap();
        let err = request(
            &*broker,
            message("silent", "hi"),
            Duration::from_millis(50),
            1,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, MsgError::Timeout), "{err}");
    }
}
