//! What the service needs from a message broker, and the two it has: the in-process one and
//! NATS (core subscriptions, and durable ones on JetStream).

pub(crate) mod embedded;
pub(crate) mod nats;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

use crate::MsgError;

/// A message as a broker carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// Where it is sent, or where it was received.
    pub(crate) subject: String,
    /// Where replies go, for a request.
    pub(crate) reply_to: Option<String>,
    /// `Content-Type`, kept apart from the other headers.
    pub(crate) content_type: Option<String>,
    /// The other headers, in order.
    pub(crate) metadata: Vec<(String, String)>,
    /// The payload.
    pub(crate) payload: Bytes,
    /// Set on the status message a broker sends to a request's inbox when nobody is subscribed
    /// to the request's subject (NATS's "no responders").
    pub(crate) no_responders: bool,
    /// For a message of a durable subscription: how to tell the broker how its handling went.
    pub(crate) settle: Option<Settle>,
}

/// What a durable subscription's message needs once handled: an acknowledgement, or a retry
/// (and after the last attempt, the dead-letter subject).
#[async_trait::async_trait]
pub(crate) trait Settlement: Send + Sync {
    /// The handler returned `ok`: the message is done.
    async fn done(&self);
    /// The handler failed (`why`: an error, a trap, the deadline): delivered again later, or
    /// after the last attempt published to the dead-letter subject.
    async fn failed(&self, why: &str);
}

impl Envelope {
    /// The same message as attempt `deliveries` of a durable subscription: the guest sees the
    /// number as the metadata entry [`DELIVERY_KEY`].
    pub(crate) fn for_attempt(mut self, deliveries: u64) -> Self {
        self.metadata
            .push((DELIVERY_KEY.to_owned(), deliveries.to_string()));
        self.metadata.sort();
        self
    }
}

/// The entries a dead-lettered message gains (as headers on NATS): why it failed (on one line),
/// after how many attempts, and the subject it came on.
pub(crate) fn dead_letter_entries(
    why: &str,
    deliveries: u64,
    subject: &str,
) -> [(&'static str, String); 3] {
    [
        (DEAD_REASON, one_line(why)),
        (DEAD_DELIVERIES, deliveries.to_string()),
        (DEAD_SUBJECT, subject.to_owned()),
    ]
}

/// A [`Settlement`] an [`Envelope`] carries.
#[derive(Clone)]
pub(crate) struct Settle(pub(crate) Arc<dyn Settlement>);

impl fmt::Debug for Settle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Settle")
    }
}

/// Envelopes compare by what they carry, not by how they are settled.
impl PartialEq for Settle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Settle {}

/// The longest delay before a durable message's retry.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The metadata entry that tells the guest which attempt of a durable message this is (1 for
/// the first).
pub(crate) const DELIVERY_KEY: &str = "tempo-delivery";
/// The headers a dead-lettered message carries: why, after how many attempts, from where.
pub(crate) const DEAD_REASON: &str = "Tempo-Dead-Letter-Reason";
pub(crate) const DEAD_DELIVERIES: &str = "Tempo-Deliveries";
pub(crate) const DEAD_SUBJECT: &str = "Tempo-Original-Subject";

/// Counts a message `component` handled, by `outcome` (`ok`, `error` or `timeout`):
/// `tempo.messages.handled`, which Prometheus shows as `tempo_messages_handled_total`.
pub(crate) fn count_handled(component: &KeyValue, outcome: &'static str) {
    static HANDLED: LazyLock<Counter<u64>> = LazyLock::new(|| {
        opentelemetry::global::meter("tempo")
            .u64_counter("tempo.messages.handled")
            .with_description("Messages handled, by outcome")
            .build()
    });
    HANDLED.add(1, &[component.clone(), KeyValue::new("outcome", outcome)]);
}

/// Counts a durable message delivered again (`redelivered`) or given up (`dead_lettered`), on
/// either broker.
pub(crate) fn count_retry(kind: &'static str) {
    static RETRIES: LazyLock<Counter<u64>> = LazyLock::new(|| {
        opentelemetry::global::meter("tempo")
            .u64_counter("tempo.messages.retries")
            .with_description(
                "Durable messages delivered again, or sent to the dead-letter subject",
            )
            .build()
    });
    RETRIES.add(1, &[KeyValue::new("kind", kind)]);
}

/// Counts and logs a message on `from` sent to the dead-letter subject `to` after `deliveries`
/// failed attempts (`why`: the last failure).
pub(crate) fn dead_lettered(from: &str, deliveries: u64, why: &str, to: &str) {
    count_retry("dead_lettered");
    tracing::warn!("a message on `{from}` failed {deliveries} time(s) ({why}); sent to `{to}`");
}

/// The delay before attempt `deliveries + 1`: `first`, doubled each attempt, at most a minute.
pub(crate) fn backoff(first: Duration, deliveries: u64) -> Duration {
    let doublings = u32::try_from(deliveries.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    first.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY)
}

/// `text` on one line (control characters as spaces) and at most 512 characters, for a header.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

/// A durable subscription: a consumer every process of a component shares (a JetStream
/// consumer on NATS, a queue in memory on the embedded broker).
#[derive(Clone, Debug)]
pub(crate) struct Durable {
    /// The consumer's name: the component's queue group.
    pub(crate) name: String,
    /// The subjects it takes (NATS wildcards allowed).
    pub(crate) subjects: Vec<String>,
    /// Attempts before a message goes to `dead_letter`.
    pub(crate) max_deliver: u32,
    /// Where a message goes after `max_deliver` failed attempts.
    pub(crate) dead_letter: String,
    /// How long an attempt may take before the message is given to another process.
    pub(crate) ack_wait: Duration,
    /// The delay before the first retry; each next one doubles, up to a minute.
    pub(crate) retry_delay: Duration,
    /// How many messages are fetched at once: the handlers' concurrency.
    pub(crate) batch: usize,
}

/// A broker: publish, subscribe, and fresh inbox subjects for requests.
#[async_trait::async_trait]
pub(crate) trait Broker: Send + Sync {
    /// Sends `message` to its subject. Fails when the broker cannot take it (NATS is down).
    async fn publish(&self, message: Envelope) -> Result<(), MsgError>;

    /// Receives what is sent to subjects matching `pattern`. With a `queue` group, each message
    /// goes to one member of the group only.
    async fn subscribe(&self, pattern: &str, queue: Option<&str>)
    -> Result<Subscription, MsgError>;

    /// Receives the messages of `durable`'s subjects through a consumer that every process of the
    /// component shares; each message carries how to [`Settle`] it.
    async fn subscribe_durable(&self, durable: &Durable) -> Result<Subscription, MsgError>;

    /// Returns once the broker has seen everything sent before (subscriptions included).
    async fn flush(&self) -> Result<(), MsgError>;

    /// A subject no one else uses, for replies.
    fn new_inbox(&self) -> String;
}

/// A subscription's messages; dropping it unsubscribes.
#[async_trait::async_trait]
pub(crate) trait Inbox: Stream<Item = Envelope> + Send + Unpin {
    /// Asks the broker to send no more; what it has already sent still arrives, then the stream
    /// ends. Messages a queue group would have given this member go to the others.
    async fn drain(&mut self);
}

/// A subscription, as brokers hand it out.
pub(crate) type Subscription = Box<dyn Inbox>;

/// How many messages a subscription holds for its handlers before the broker drops new ones
/// (NATS calls it a slow consumer): sixteen per message handled at once, and at least 1024, so
/// that a burst is absorbed while the backlog stays bounded (async-nats holds 65,536 by default).
pub fn subscription_capacity(concurrency: usize) -> usize {
    concurrency.saturating_mul(16).max(1024)
}

/// Sends `message` as a request and gathers up to `expected` replies, waiting at most `timeout`.
/// An error when nobody is subscribed to the subject, or when no reply came in time.
pub(crate) async fn request(
    broker: &dyn Broker,
    mut message: Envelope,
    timeout: Duration,
    expected: usize,
) -> Result<Vec<Envelope>, MsgError> {
    let inbox = broker.new_inbox();
    let mut replies = broker
        .subscribe(&inbox, None)
        .await
        .map_err(|err| MsgError::Connection(format!("{err:#}")))?;
    let subject = message.subject.clone();
    message.reply_to = Some(inbox);
    broker.publish(message).await?;

    let mut received = Vec::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while received.len() < expected.max(1) {
        tokio::select! {
            () = &mut deadline => break,
            reply = replies.next() => match reply {
                Some(reply) if reply.no_responders => {
                    return Err(MsgError::Other(format!("no one is subscribed to `{subject}`")));
                }
                Some(reply) => received.push(reply),
                None => return Err(MsgError::Connection("the connection closed".into())),
            },
        }
    }
    if received.is_empty() {
        return Err(MsgError::Timeout);
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_a_minute() {
        let second = Duration::from_secs(1);
        let waits: Vec<u64> = [1, 2, 3, 4].map(|n| backoff(second, n).as_secs()).to_vec();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(backoff(second, 40), MAX_RETRY_DELAY);
    }

    #[test]
    fn headers_are_one_line() {
        assert_eq!(one_line("a\r\nb"), "a  b");
        assert_eq!(one_line(&"x".repeat(600)).len(), 512);
    }
}
