//! The trigger: subscribe to the configured subjects (or, durable, to their consumer) and run
//! each message through the guest's `incoming-handler` in an instance of the version current when
//! it arrives (fresh, or reused: `crate::instances`); a durable message is then acknowledged, or
//! retried.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::stream::SelectAll;
use futures::{FutureExt as _, StreamExt as _};
use tempo_runtime_core::admission::Slot;
use tempo_runtime_core::limits::DeadlineExceeded;
use tempo_runtime_core::outcome::log_failure;
use tempo_runtime_core::trace_context;
use tempo_runtime_core::wasmtime::component::InstancePre;
use tempo_runtime_core::{
    Demand, InterfaceName, LiveComponent, RequestId, Running, ServeWith, Starting, State, Trigger,
    Version,
};
use tracing::Instrument as _;

use crate::backend::{Durable, Envelope, Settle, Subscription, count_handled};
use crate::host::generated::MessagingRequestReplyPre;
use crate::{MessagingService, subject};

impl Trigger for MessagingService {
    type Prepared = crate::instances::Prepared;

    fn export(&self) -> &InterfaceName {
        &self.export
    }

    fn prepare(&self, pre: &InstancePre<State>) -> anyhow::Result<Self::Prepared> {
        let handler = MessagingRequestReplyPre::new(pre.clone())
            .map_err(anyhow::Error::from)
            .context("its `wasi:messaging/incoming-handler` export has the wrong shape")?;
        let reuse = self.shared.config.instance_reuse;
        Ok(crate::instances::Prepared {
            handler,
            pool: (reuse > 1).then(|| Arc::new(crate::instances::Pool::new(reuse))),
        })
    }

    fn demand(&self) -> Demand {
        Demand::Fixed {
            instances: self.shared.config.concurrency,
            setting: "[messaging] concurrency",
        }
    }

    fn start(self: Arc<Self>, with: ServeWith) -> Starting {
        async move {
            let config = &self.shared.config;
            let name = with.live.current().name().to_owned();
            if config.subscriptions.is_empty() {
                bail!(
                    "`{name}` handles messages but subscribes to no subject: set {}",
                    crate::settings::SUBSCRIPTIONS.how_to_set()
                );
            }
            for pattern in &config.subscriptions {
                subject::check_pattern(pattern)
                    .map_err(|reason| anyhow!("cannot subscribe to {reason}"))?;
            }
            let deadline = with.live.current().limits().deadline;
            let queue = config.queue_group.clone().unwrap_or(name);
            let broker = self.shared.broker.get().await?;
            let mut streams = Vec::new();
            let address = match &config.durable {
                Some(durable) => {
                    let spec = durable_spec(config, durable, &queue, deadline)?;
                    streams.push(broker.subscribe_durable(&spec).await?);
                    format!(
                        "durable messages on {} (consumer `{queue}`, up to {} attempts, then \
                         `{}`) through {}",
                        config.subscriptions.join(", "),
                        spec.max_deliver,
                        spec.dead_letter,
                        self.backend_description()
                    )
                }
                None => {
                    for pattern in &config.subscriptions {
                        streams.push(broker.subscribe(pattern, Some(&queue)).await?);
                    }
                    format!(
                        "messages on {} (queue group `{queue}`) through {}",
                        config.subscriptions.join(", "),
                        self.backend_description()
                    )
                }
            };
            // Once the server has the subscriptions, "Serving" is true.
            broker.flush().await?;
            let grace = self.shared.config.shutdown_grace;
            let serve = dispatch(futures::stream::select_all(streams), with, grace);
            Ok(Running {
                address,
                warnings: Vec::new(),
                serve: serve.boxed(),
            })
        }
        .boxed()
    }
}

/// How long a durable message's attempt may last beyond the handler's deadline before the
/// broker gives it to another process.
const ACK_SLACK: Duration = Duration::from_secs(10);
/// How long an attempt may last when handlers have no deadline.
const ACK_WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(300);

/// The durable subscription of the component whose handlers form `queue`.
fn durable_spec(
    config: &crate::MessagingConfig,
    durable: &crate::DurableConfig,
    queue: &str,
    deadline: Option<Duration>,
) -> anyhow::Result<Durable> {
    let dead_letter = durable
        .dead_letter
        .clone()
        .unwrap_or_else(|| format!("tempo.dead-letter.{queue}"));
    subject::check_topic(&dead_letter).map_err(|why| {
        anyhow!(
            "the dead-letter subject: {why}; set {}",
            crate::settings::DEAD_LETTER
        )
    })?;
    // A dead letter the handler takes again would come back for ever.
    if let Some(pattern) = config
        .subscriptions
        .iter()
        .find(|pattern| subject::matches(pattern, &dead_letter))
    {
        bail!(
            "the dead-letter subject `{dead_letter}` is one the handler subscribes to (`{pattern}`): \
             failed messages would come back for ever; set {} to another",
            crate::settings::DEAD_LETTER
        );
    }
    Ok(Durable {
        name: queue.to_owned(),
        subjects: config.subscriptions.clone(),
        max_deliver: durable.max_deliver,
        dead_letter,
        ack_wait: deadline.unwrap_or(ACK_WAIT_WITHOUT_DEADLINE) + ACK_SLACK,
        retry_delay: durable.retry_delay,
        batch: config.concurrency,
    })
}

/// Hands each message to a task of its own, at most as many at once as `with.slots` has, until
/// `with.shutdown`. Then it drains the subscriptions: the broker sends no more, and the queue group's
/// other members get what this one would have. What had already arrived is still handled, and
/// the handlers get `grace` to finish.
async fn dispatch(
    mut messages: SelectAll<Subscription>,
    with: ServeWith,
    grace: Duration,
) -> anyhow::Result<()> {
    let ServeWith {
        live,
        slots,
        shutdown,
    } = with;
    loop {
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.wait() => slot,
        };
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            message = messages.next() => match message {
                Some(message) => message,
                None => bail!("the broker ended the subscriptions"),
            },
        };
        spawn_handler(&live, message, slot);
    }

    let stop_at = tokio::time::Instant::now() + grace;
    let drained = async {
        for subscription in messages.iter_mut() {
            subscription.drain().await;
        }
        while let Some(message) = messages.next().await {
            let slot = slots.wait().await;
            spawn_handler(&live, message, slot);
        }
    };
    let left = tokio::time::timeout_at(stop_at, drained).await.is_err();
    let all_done = slots
        .all_free_within(stop_at.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    if left || !all_done {
        tracing::warn!("messages still being handled after {grace:?}; leaving them");
    }
    Ok(())
}

fn spawn_handler(live: &LiveComponent, message: Envelope, slot: Slot) {
    let version = live.current();
    tokio::spawn(async move {
        handle(&version, message).await;
        drop(slot);
    });
}

/// Runs one message through `version`'s handler in a `message` span with a fresh id. A trap or
/// an error the guest returns is logged; it never stops the trigger. Counted by outcome.
async fn handle(version: &Arc<Version>, mut message: Envelope) {
    let settle = message.settle.take();
    let subject = message.subject.clone();
    let id = RequestId::generate();
    let span = tracing::info_span!(
        "message",
        component = version.name(),
        request_id = id.as_str(),
        messaging.destination.name = subject.as_str(),
    );
    trace_context::adopt_parent(&span, &trace_context::Metadata(&message.metadata));
    let outcome = crate::instances::invoke(version, message, id.clone())
        .instrument(span.clone())
        .await;
    if let Err(err) = &outcome {
        let what = format!("the message on `{subject}`");
        span.in_scope(|| log_failure(version, &id, &what, err));
    }
    if let Some(Settle(settlement)) = settle {
        match &outcome {
            Ok(()) => settlement.done().await,
            Err(err) => settlement.failed(&format!("{err:#}")).await,
        }
    }
    let outcome = match &outcome {
        Ok(()) => "ok",
        Err(err) if err.is::<DeadlineExceeded>() => "timeout",
        Err(_) => "error",
    };
    count_handled(version.component_attribute(), outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_subject_the_handler_takes_is_refused() {
        let config = crate::MessagingConfig {
            subscriptions: vec!["jobs.>".into()],
            ..crate::MessagingConfig::default()
        };
        let loops = crate::DurableConfig {
            dead_letter: Some("jobs.dead".into()),
            ..crate::DurableConfig::default()
        };
        let err = durable_spec(&config, &loops, "q", None).unwrap_err();
        assert!(
            err.to_string().contains("would come back for ever"),
            "{err}"
        );
        let spec = durable_spec(&config, &crate::DurableConfig::default(), "q", None).unwrap();
        assert_eq!(spec.dead_letter, "tempo.dead-letter.q");
        assert_eq!(spec.ack_wait, ACK_WAIT_WITHOUT_DEADLINE + ACK_SLACK);
    }
}
