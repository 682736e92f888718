//! Core NATS: subjects as they are, metadata as headers, `Content-Type` as a header of that name.
//! async-nats reconnects after an outage and subscribes again; while it is disconnected, sending
//! fails at once rather than queueing behind the guest's back. Durable subscriptions are in
//! [`durable`].

mod durable;

use async_nats::connection::State;
use async_nats::header::HeaderMap;
use async_nats::{Client, StatusCode};
use std::pin::Pin;
use std::task::{Context, Poll};
use tempo_nats::NatsServer;

use futures::{Stream, StreamExt as _};

use super::{Broker, Durable, Envelope, Inbox, Subscription};
use crate::MsgError;

/// The header that carries a message's content type.
const CONTENT_TYPE: &str = "Content-Type";

/// A connection to a NATS server or cluster.
pub(crate) struct Nats {
    client: Client,
    /// The server, for its address and the replicas of the streams tempo creates.
    server: NatsServer,
}

impl Nats {
    /// Connects to `server` (each subscription holds what the server's subscription capacity
    /// says); an unreachable server is an error now, an outage later is retried.
    pub(crate) async fn connect(server: &NatsServer) -> anyhow::Result<Self> {
        Ok(Self {
            client: server.client().await?,
            server: server.clone(),
        })
    }

    fn unreachable(&self) -> MsgError {
        MsgError::Connection(format!("NATS at {} is unreachable", self.server.url()))
    }
}

#[async_trait::async_trait]
impl Broker for Nats {
    async fn publish(&self, message: Envelope) -> Result<(), MsgError> {
        if self.client.connection_state() != State::Connected {
            return Err(self.unreachable());
        }
        let mut headers = HeaderMap::new();
        if let Some(content_type) = &message.content_type {
            headers.insert(CONTENT_TYPE, content_type.as_str());
        }
        for (key, value) in &message.metadata {
            headers.append(key.as_str(), value.as_str());
        }
        let sent = match message.reply_to {
            Some(reply_to) => {
                self.client
                    .publish_with_reply_and_headers(
                        message.subject,
                        reply_to,
                        headers,
                        message.payload,
                    )
                    .await
            }
            None => {
                self.client
                    .publish_with_headers(message.subject, headers, message.payload)
                    .await
            }
        };
        sent.map_err(|err| MsgError::Other(format!("NATS refused the message: {err}")))
    }

    async fn subscribe(
        &self,
        pattern: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, MsgError> {
        let subscriber = match queue {
            Some(queue) => {
                self.client
                    .queue_subscribe(pattern.to_owned(), queue.to_owned())
                    .await
            }
            None => self.client.subscribe(pattern.to_owned()).await,
        }
        .map_err(|err| {
            MsgError::Connection(format!(
                "cannot subscribe to `{pattern}` on NATS at {}: {err}",
                self.server.url()
            ))
        })?;
        Ok(Box::new(NatsInbox(subscriber)))
    }

    async fn subscribe_durable(&self, spec: &Durable) -> Result<Subscription, MsgError> {
        durable::subscribe(&self.client, &self.server, spec).await
    }

    async fn flush(&self) -> Result<(), MsgError> {
        self.client.flush().await.map_err(|err| {
            MsgError::Connection(format!(
                "NATS at {} did not answer: {err}",
                self.server.url()
            ))
        })
    }

    fn new_inbox(&self) -> String {
        self.client.new_inbox()
    }
}

/// A NATS subscription.
struct NatsInbox(async_nats::Subscriber);

impl Stream for NatsInbox {
    type Item = Envelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        self.0
            .poll_next_unpin(cx)
            .map(|message| message.map(|message| envelope(&message)))
    }
}

#[async_trait::async_trait]
impl Inbox for NatsInbox {
    async fn drain(&mut self) {
        if let Err(err) = self.0.drain().await {
            // The connection is gone: the server has dropped the subscription already.
            tracing::debug!("cannot drain a NATS subscription: {err}");
        }
    }
}

/// What a core NATS message carries, as an [`Envelope`].
fn envelope(message: &async_nats::Message) -> Envelope {
    let mut content_type = None;
    let mut metadata = Vec::new();
    for (name, values) in message.headers.iter().flat_map(HeaderMap::iter) {
        for value in values {
            if AsRef::<str>::as_ref(name).eq_ignore_ascii_case(CONTENT_TYPE) {
                content_type = Some(value.as_str().to_owned());
            } else {
                metadata.push((name.to_string(), value.as_str().to_owned()));
            }
        }
    }
    metadata.sort();
    Envelope {
        subject: message.subject.to_string(),
        reply_to: message.reply.as_ref().map(ToString::to_string),
        content_type,
        metadata,
        payload: message.payload.clone(),
        no_responders: message.status == Some(StatusCode::NO_RESPONDERS),
        settle: None,
    }
}
