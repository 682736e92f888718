//! The in-process broker: NATS subject semantics (wildcards, queue groups, no-responders for
//! requests nobody listens to) without a server, for `cargo tempo dev` and single-process use.
//! Like core NATS it holds nothing: a message nobody is subscribed to is gone, and a subscriber
//! that falls [`BACKLOG`] messages behind loses the newest ones (NATS calls it a slow consumer).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::{Broker, Envelope};
use crate::MsgError;
use crate::subject;

/// How many messages a subscription may have waiting before new ones are dropped.
pub(crate) const BACKLOG: usize = 65_536;

/// The in-process broker.
#[derive(Default)]
pub(crate) struct Embedded {
    subscriptions: Arc<Mutex<Subscriptions>>,
    next_inbox: AtomicU64,
}

#[derive(Default)]
struct Subscriptions {
    next_id: u64,
    list: Vec<Subscription>,
    /// Per queue group, how many messages it has been given: picks the next member in turn.
    turns: HashMap<String, usize>,
}

struct Subscription {
    id: u64,
    pattern: String,
    queue: Option<String>,
    sender: mpsc::Sender<Envelope>,
}

impl Subscriptions {
    /// The subscriptions that get a message sent to `subject`: every plain one that matches,
    /// and one member of each matching queue group.
    fn receivers(&mut self, subject: &str) -> Vec<mpsc::Sender<Envelope>> {
        let mut receivers = Vec::new();
        let mut groups: HashMap<&str, Vec<&mpsc::Sender<Envelope>>> = HashMap::new();
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
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        // The lock guards plain bookkeeping that a panic cannot leave half-done.
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, message: &Envelope) -> bool {
        let receivers = self.lock().receivers(&message.subject);
        let delivered = !receivers.is_empty();
        for receiver in receivers {
            if let Err(mpsc::error::TrySendError::Full(_)) = receiver.try_send(message.clone()) {
                tracing::warn!(
                    subject = message.subject,
                    "a subscriber is {BACKLOG} messages behind; dropping a message"
                );
            }
        }
        delivered
    }
}

#[async_trait::async_trait]
impl Broker for Embedded {
    async fn publish(&self, message: Envelope) -> Result<(), MsgError> {
        if !self.deliver(&message)
            && let Some(reply_to) = &message.reply_to
        {
            self.deliver(&Envelope {
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
    ) -> anyhow::Result<BoxStream<'static, Envelope>> {
        let (sender, receiver) = mpsc::channel(BACKLOG);
        let mut subscriptions = self.lock();
        let id = subscriptions.next_id;
        subscriptions.next_id += 1;
        subscriptions.list.push(Subscription {
            id,
            pattern: pattern.to_owned(),
            queue: queue.map(str::to_owned),
            sender,
        });
        Ok(Box::pin(Receiver {
            id,
            receiver,
            subscriptions: self.subscriptions.clone(),
        }))
    }

    async fn flush(&self) -> anyhow::Result<()> {
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
    subscriptions: Arc<Mutex<Subscriptions>>,
}

impl Stream for Receiver {
    type Item = Envelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        self.receiver.poll_recv(cx)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscriptions.list.retain(|s| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use std::time::Duration;

    use futures::StreamExt as _;

    use super::*;
    use crate::broker::request;

    fn message(subject: &str, payload: &'static str) -> Envelope {
        Envelope {
            subject: subject.into(),
            payload: payload.into(),
            ..Envelope::default()
        }
    }

    async fn next(stream: &mut BoxStream<'static, Envelope>) -> Option<Envelope> {
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn wildcard_subscriptions_receive_what_matches() {
        let broker = Embedded::default();
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
        let broker = Embedded::default();
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
        let broker = Embedded::default();
        let stream = broker.subscribe("jobs", None).await.unwrap();
        drop(stream);
        assert!(broker.lock().list.is_empty());
    }

    #[tokio::test]
    async fn requests_get_replies_or_say_why_not() {
        let broker = Arc::new(Embedded::default());
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
