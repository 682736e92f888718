//! The `wasi:messaging` host functions, on a view borrowed from an instance's state.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use tempo_runtime_core::ServiceView;
use tempo_runtime_core::trace_context;
use wasmtime::component::{Resource, ResourceTable};

use crate::backend::{self, Broker, Envelope};
use crate::{MsgError, Shared, subject};

tempo_runtime_core::host_bindings!(pub(crate) mod generated = async "wasi:messaging/messaging-request-reply" {
    exports: { default: async },
    with: {
        "wasi:messaging/types.client": crate::host::ClientHandle,
        "wasi:messaging/types.message": crate::host::MessageHandle,
        "wasi:messaging/request-reply.request-options": crate::host::RequestOptions,
    },
    trappable_error_type: {
        "wasi:messaging/types.error" => crate::MsgError,
    },
});

use generated::wasi::messaging::{producer, request_reply, types};

type BrokerResult = Result<(Arc<Shared>, Arc<dyn Broker>), MsgError>;

/// A guest's connection, as it holds it. Tempo has one broker per process; the name a guest
/// connects with is kept for logs.
pub struct ClientHandle {
    name: String,
}

/// A message, as a guest holds it: one it received, or one it is putting together.
pub struct MessageHandle {
    pub(crate) envelope: Envelope,
}

/// A guest's options for one request.
#[derive(Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    expected_replies: Option<u32>,
}

/// The host functions' view of an instance: its resource table and the service's shared part.
type MsgView<'a> = ServiceView<'a, Shared>;

/// The bindings of the interfaces the service provides, linked all at once on `Data`.
pub(crate) type Bindings = generated::MessagingRequestReply;

/// What the bindings are implemented on: [`ServiceView`] of the service's shared part.
pub(crate) type Data = tempo_runtime_core::ServiceData<Shared>;

/// The service's shared part and its broker, connected. It owns what it needs, so the host
/// functions await it without holding the view (which is not `Sync`).
async fn connected(shared: Arc<Shared>) -> BrokerResult {
    let broker = shared
        .broker
        .get()
        .await
        .map_err(|err| MsgError::Connection(format!("{err:#}")))?
        .clone();
    Ok((shared, broker))
}

/// The message behind `handle`; a stale handle is a table error, which traps in the functions
/// that return no error and converts to [`MsgError::Trap`] in those that do.
fn envelope<'t>(
    table: &'t ResourceTable,
    handle: &Resource<MessageHandle>,
) -> Result<&'t Envelope, wasmtime::component::ResourceTableError> {
    Ok(&table.get(handle)?.envelope)
}

/// The message behind `handle`, to change.
fn envelope_mut<'t>(
    table: &'t mut ResourceTable,
    handle: &Resource<MessageHandle>,
) -> Result<&'t mut Envelope, wasmtime::component::ResourceTableError> {
    Ok(&mut table.get_mut(handle)?.envelope)
}

impl Shared {
    /// `message` addressed to `topic`, checked against the subject rules, the allow-list, the
    /// header rules and the size limit, carrying on the trace `sent_in`.
    fn addressed(
        &self,
        topic: String,
        message: Envelope,
        sent_in: &Context,
    ) -> Result<Envelope, MsgError> {
        subject::check_topic(&topic).map_err(MsgError::PermissionDenied)?;
        if let Some(allowed) = &self.config.allowed_subjects
            && !allowed
                .iter()
                .any(|pattern| subject::matches(pattern, &topic))
        {
            return Err(MsgError::PermissionDenied(format!(
                "`{topic}` is not among the subjects guests may send to (messaging allowed-subjects)"
            )));
        }
        self.checked(topic, message, sent_in)
    }

    /// `message` as the answer to a request whose reply subject is `reply_to`.
    fn answering(
        &self,
        reply_to: String,
        message: Envelope,
        sent_in: &Context,
    ) -> Result<Envelope, MsgError> {
        subject::check_reply_subject(&reply_to).map_err(MsgError::PermissionDenied)?;
        self.checked(reply_to, message, sent_in)
    }

    fn checked(
        &self,
        topic: String,
        mut message: Envelope,
        sent_in: &Context,
    ) -> Result<Envelope, MsgError> {
        let headers = message
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .chain(
                message
                    .content_type
                    .as_deref()
                    .map(|value| ("content-type", value)),
            );
        subject::check_headers(headers).map_err(MsgError::Other)?;
        let limit = self.config.max_message_bytes;
        if message.payload.len() > limit {
            return Err(MsgError::Other(format!(
                "the message to `{topic}` has {} bytes, over the limit of {limit} (messaging max-message-bytes)",
                message.payload.len()
            )));
        }
        message.subject = topic;
        message.reply_to = None;
        message.no_responders = false;
        // The message goes on with the trace of the call that sends it (or of its work, for a
        // reused instance), unless the guest set its own `traceparent`.
        trace_context::inject_metadata(sent_in, &mut message.metadata);
        Ok(message)
    }
}

impl types::Host for MsgView<'_> {
    fn convert_error(&mut self, err: MsgError) -> wasmtime::Result<types::Error> {
        match err {
            MsgError::Timeout => Ok(types::Error::Timeout),
            MsgError::Connection(message) => Ok(types::Error::Connection(message)),
            MsgError::PermissionDenied(message) => Ok(types::Error::PermissionDenied(message)),
            MsgError::Other(message) => Ok(types::Error::Other(message)),
            MsgError::Trap(err) => Err(err),
        }
    }
}

impl types::HostClient for MsgView<'_> {
    async fn connect(&mut self, name: String) -> Result<Resource<ClientHandle>, MsgError> {
        connected(self.context()?.clone()).await?;
        Ok(self.table.push(ClientHandle { name })?)
    }

    async fn disconnect(&mut self, client: Resource<ClientHandle>) -> Result<(), MsgError> {
        self.table.get(&client)?;
        Ok(())
    }

    async fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        let client = self.table.delete(client)?;
        tracing::trace!(client = client.name, "a guest closed its messaging client");
        Ok(())
    }
}

impl types::HostMessage for MsgView<'_> {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<MessageHandle>> {
        let envelope = Envelope {
            payload: data.into(),
            ..Envelope::default()
        };
        Ok(self.table.push(MessageHandle { envelope })?)
    }

    async fn topic(
        &mut self,
        message: Resource<MessageHandle>,
    ) -> wasmtime::Result<Option<String>> {
        let subject = &envelope(self.table, &message)?.subject;
        Ok((!subject.is_empty()).then(|| subject.clone()))
    }

    async fn content_type(
        &mut self,
        message: Resource<MessageHandle>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(envelope(self.table, &message)?.content_type.clone())
    }

    async fn set_content_type(
        &mut self,
        message: Resource<MessageHandle>,
        content_type: String,
    ) -> wasmtime::Result<()> {
        envelope_mut(self.table, &message)?.content_type = Some(content_type);
        Ok(())
    }

    async fn data(&mut self, message: Resource<MessageHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(envelope(self.table, &message)?.payload.to_vec())
    }

    async fn set_data(
        &mut self,
        message: Resource<MessageHandle>,
        data: Vec<u8>,
    ) -> wasmtime::Result<()> {
        envelope_mut(self.table, &message)?.payload = data.into();
        Ok(())
    }

    async fn metadata(
        &mut self,
        message: Resource<MessageHandle>,
    ) -> wasmtime::Result<Option<Vec<(String, String)>>> {
        let metadata = &envelope(self.table, &message)?.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(
        &mut self,
        message: Resource<MessageHandle>,
        key: String,
        value: String,
    ) -> wasmtime::Result<()> {
        let metadata = &mut envelope_mut(self.table, &message)?.metadata;
        metadata.retain(|(k, _)| *k != key);
        metadata.push((key, value));
        Ok(())
    }

    async fn set_metadata(
        &mut self,
        message: Resource<MessageHandle>,
        meta: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        envelope_mut(self.table, &message)?.metadata = meta;
        Ok(())
    }

    async fn remove_metadata(
        &mut self,
        message: Resource<MessageHandle>,
        key: String,
    ) -> wasmtime::Result<()> {
        envelope_mut(self.table, &message)?
            .metadata
            .retain(|(k, _)| *k != key);
        Ok(())
    }

    async fn drop(&mut self, message: Resource<MessageHandle>) -> wasmtime::Result<()> {
        self.drop_resource(message)
    }
}

impl producer::Host for MsgView<'_> {
    async fn send(
        &mut self,
        client: Resource<ClientHandle>,
        topic: String,
        message: Resource<MessageHandle>,
    ) -> Result<(), MsgError> {
        self.table.get(&client)?;
        let message = self.table.delete(message)?.envelope;
        let sent_in = trace_context::current_within(&self.work.trace());
        let (shared, broker) = connected(self.context()?.clone()).await?;
        broker
            .publish(shared.addressed(topic, message, &sent_in)?)
            .await
    }
}

impl request_reply::HostRequestOptions for MsgView<'_> {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(
        &mut self,
        options: Resource<RequestOptions>,
        timeout_ms: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.timeout = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    async fn set_expected_replies(
        &mut self,
        options: Resource<RequestOptions>,
        expected_replies: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.expected_replies = Some(expected_replies);
        Ok(())
    }

    async fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.drop_resource(options)
    }
}

impl request_reply::Host for MsgView<'_> {
    async fn request(
        &mut self,
        client: Resource<ClientHandle>,
        topic: String,
        message: Resource<MessageHandle>,
        options: Option<Resource<RequestOptions>>,
    ) -> Result<Vec<Resource<MessageHandle>>, MsgError> {
        self.table.get(&client)?;
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        let message = envelope(self.table, &message)?.clone();
        let sent_in = trace_context::current_within(&self.work.trace());
        let (shared, broker) = connected(self.context()?.clone()).await?;
        let message = shared.addressed(topic, message, &sent_in)?;
        let timeout = options.timeout.unwrap_or(shared.config.request_timeout);
        let expected = options
            .expected_replies
            .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let replies = backend::request(&*broker, message, timeout, expected).await?;
        replies
            .into_iter()
            .map(|envelope| Ok(self.table.push(MessageHandle { envelope })?))
            .collect()
    }

    async fn reply(
        &mut self,
        reply_to: Resource<MessageHandle>,
        message: Resource<MessageHandle>,
    ) -> Result<(), MsgError> {
        let Some(subject) = envelope(self.table, &reply_to)?.reply_to.clone() else {
            return Err(MsgError::Other(
                "this message has no reply-to subject: it was not sent as a request".into(),
            ));
        };
        let message = self.table.delete(message)?.envelope;
        let sent_in = trace_context::current_within(&self.work.trace());
        let (shared, broker) = connected(self.context()?.clone()).await?;
        broker
            .publish(shared.answering(subject, message, &sent_in)?)
            .await
    }
}
