//! Durable subscriptions on JetStream. The component's subjects are bound to a stream: one that
//! already takes them, or one tempo creates (interest retention: a message stays until every
//! consumer has acknowledged it). One durable pull consumer per component, named after its queue
//! group, is shared by every process of it: they split the messages, and a restarted process goes
//! on where the group was.
//!
//! A message is acknowledged once its handler returns `ok`. A failure is a negative
//! acknowledgement with a delay that doubles each attempt. After `max-deliver` attempts the
//! message is published to the dead-letter subject with headers saying why and how often, then
//! terminated. The server redelivers without a limit, so that a message whose handling never ends
//! (its process died each time) is dead-lettered too, on its next delivery, without a handler.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::Client;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{self, stream};
use futures::{Stream, StreamExt as _};
use tempo_nats::NatsServer;

use super::envelope;
use crate::MsgError;
use crate::backend::{
    Durable, Envelope, Inbox, Settle, Settlement, Subscription, backoff, count_retry,
    dead_letter_entries, dead_lettered,
};

/// How long a JetStream request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The description of the streams tempo creates.
const TEMPO_STREAM: &str = "created by tempo for durable messages";

/// Binds `spec`'s subjects to a stream and its consumer, and returns its messages. A cluster
/// that cannot answer yet (starting, or electing leaders) is given a minute.
pub(super) async fn subscribe(
    client: &Client,
    server: &NatsServer,
    spec: &Durable,
) -> Result<Subscription, MsgError> {
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client.clone());
    let what = format!("the binding of the durable messages of `{}`", spec.name);
    let messages = tempo_nats::patiently(&what, || bind(&js, server, spec))
        .await
        .map_err(|err| {
            MsgError::Connection(format!(
                "cannot bind the durable messages of `{}` on NATS at {}: {err:#}",
                spec.name,
                server.url()
            ))
        })?;
    Ok(Box::new(DurableInbox {
        messages,
        shared: Arc::new(Shared {
            client: client.clone(),
            spec: spec.clone(),
        }),
        failing: AtomicBool::new(false),
        drained: false,
        redelivering: AtomicBool::new(false),
    }))
}

/// The stream, the consumer and its messages, each step named in the error.
async fn bind(
    js: &jetstream::Context,
    server: &NatsServer,
    spec: &Durable,
) -> anyhow::Result<pull::Stream> {
    let stream = bind_stream(js, server, spec)
        .await
        .context("cannot bind a stream")?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(spec.name.clone()),
            description: Some(format!("tempo: the handlers of `{}`", spec.name)),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            // tempo counts attempts itself, so that the last one is dead-lettered.
            max_deliver: -1,
            filter_subjects: spec.subjects.clone(),
            ..pull::Config::default()
        })
        .await
        .context("cannot create its consumer")?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(spec.batch.max(1))
        .messages()
        .await
        .context("cannot read its consumer")?;
    Ok(messages)
}

/// The stream that already takes the first subject, or a new one named after the consumer.
async fn bind_stream(
    js: &jetstream::Context,
    server: &NatsServer,
    spec: &Durable,
) -> anyhow::Result<stream::Stream> {
    let first = spec
        .subjects
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    match js.stream_by_subject(first).await {
        Ok(name) => {
            let stream = js.get_stream(&name).await?;
            let found = stream.cached_info().config.num_replicas;
            server.keep_replicas(&format!("the JetStream stream `{name}`"), found);
            return Ok(stream);
        }
        // Only a stream that is not there is created; a lookup that failed is an error.
        Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    let name = stream_name(&spec.name);
    js.get_or_create_stream(stream::Config {
        name: name.clone(),
        description: Some(TEMPO_STREAM.to_owned()),
        subjects: spec.subjects.clone(),
        retention: stream::RetentionPolicy::Interest,
        storage: stream::StorageType::File,
        num_replicas: server.replicas(),
        ..stream::Config::default()
    })
    .await
    .with_context(|| format!("the stream `{name}`{}", server.replicas_asked()))
}

/// `TEMPO_` and the consumer's name, with what a stream name may not hold as `_`.
fn stream_name(consumer: &str) -> String {
    let name: String = consumer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("TEMPO_{name}")
}

/// What every message of one subscription shares.
struct Shared {
    client: Client,
    spec: Durable,
}

impl Shared {
    /// Publishes `message` to the dead-letter subject, with why and after how many attempts;
    /// whether it was sent (if not, the message must stay on its stream).
    async fn dead_letter(&self, message: &async_nats::Message, deliveries: u64, why: &str) -> bool {
        let mut headers = message.headers.clone().unwrap_or_default();
        for (name, value) in dead_letter_entries(why, deliveries, &message.subject) {
            headers.insert(name, value.as_str());
        }
        let sent = self
            .client
            .publish_with_headers(
                self.spec.dead_letter.clone(),
                headers,
                message.payload.clone(),
            )
            .await;
        let to = &self.spec.dead_letter;
        match sent {
            Ok(()) => {
                dead_lettered(&message.subject, deliveries, why, to);
                true
            }
            Err(err) => {
                tracing::warn!(
                    "cannot send a failed message to `{to}`: {err}; it stays on its stream"
                );
                false
            }
        }
    }
}

/// The consumer's messages, as [`Envelope`]s that carry their [`Settle`].
struct DurableInbox {
    messages: pull::Stream,
    shared: Arc<Shared>,
    /// Whether the last read failed: errors are logged once until reads succeed again.
    failing: AtomicBool,
    /// Set by [`Inbox::drain`]: no more messages are taken.
    drained: bool,
    /// Whether a redelivery was logged already (once per process; the metric counts each).
    redelivering: AtomicBool,
}

impl Stream for DurableInbox {
    type Item = Envelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        loop {
            if self.drained {
                return Poll::Ready(None);
            }
            let message = match std::task::ready!(self.messages.poll_next_unpin(cx)) {
                None => return Poll::Ready(None),
                Some(Err(err)) => {
                    tempo_nats::call_failed("a read of durable messages", &err);
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "cannot read the durable messages of `{}`: {err}; retrying",
                            self.shared.spec.name
                        );
                    }
                    continue;
                }
                Some(Ok(message)) => message,
            };
            if self.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    "reading the durable messages of `{}` again",
                    self.shared.spec.name
                );
            }
            let deliveries = message
                .info()
                .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
            let (message, acker) = message.split();
            let shared = self.shared.clone();
            if deliveries > u64::from(shared.spec.max_deliver) {
                // Handled `max-deliver` times already, never to an end: its process died.
                tokio::spawn(async move {
                    let why = "its handler never finished (the process stopped)";
                    // Not sent: left unacknowledged, it comes again after the ack wait.
                    if shared.dead_letter(&message, deliveries - 1, why).await
                        && let Err(err) = acker.ack_with(AckKind::Term).await
                    {
                        tracing::debug!("cannot terminate a dead-lettered message: {err}");
                    }
                });
                continue;
            }
            if deliveries > 1 {
                count_retry("redelivered");
                if !self.redelivering.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "messages of `{}` are being delivered again (a handler failed, or a \
                         process stopped with messages in hand); counted in \
                         tempo_messages_retries_total",
                        self.shared.spec.name
                    );
                }
            }
            let mut envelope = envelope(&message).for_attempt(deliveries);
            envelope.settle = Some(Settle(Arc::new(JetStreamSettlement {
                acker,
                message,
                deliveries,
                shared,
            })));
            return Poll::Ready(Some(envelope));
        }
    }
}

#[async_trait::async_trait]
impl Inbox for DurableInbox {
    /// Takes no more messages. What was fetched and not handed out goes to another process
    /// after the ack wait; the consumer itself stays, for the group.
    async fn drain(&mut self) {
        self.drained = true;
    }
}

/// How one message of a durable subscription is settled.
struct JetStreamSettlement {
    acker: Acker,
    /// The message, for the dead-letter subject.
    message: async_nats::Message,
    /// This attempt's number, from 1.
    deliveries: u64,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Settlement for JetStreamSettlement {
    async fn done(&self) {
        if let Err(err) = self.acker.ack().await {
            tracing::debug!("cannot acknowledge a message (it will come again): {err}");
        }
    }

    async fn failed(&self, why: &str) {
        let last = self.deliveries >= u64::from(self.shared.spec.max_deliver);
        let kind = if last
            && self
                .shared
                .dead_letter(&self.message, self.deliveries, why)
                .await
        {
            AckKind::Term
        } else {
            AckKind::Nak(Some(backoff(self.shared.spec.retry_delay, self.deliveries)))
        };
        if let Err(err) = self.acker.ack_with(kind).await {
            tracing::debug!("cannot settle a failed message (it will come again): {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_hold_only_what_jetstream_allows() {
        assert_eq!(stream_name("orders.v2 worker"), "TEMPO_ORDERS_V2_WORKER");
        assert_eq!(stream_name("a-b_c"), "TEMPO_A-B_C");
    }
}
