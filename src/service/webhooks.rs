//! Webhook endpoints and their deliveries log: the admin's use cases. The relay (`service::relay`) does
//! the delivering.

use uuid::Uuid;

use super::{Cursor, FieldError, Page, ServiceError};
use crate::{
    domain::{
        event::EventType,
        timefmt,
        webhook::{Attempt, MAX_WEBHOOKS, TargetPolicy, Webhook, new_secret},
    },
    store::{
        Store,
        webhooks::{CreateWebhookOutcome, RequeueOutcome, WebhookWriteOutcome},
    },
};

/// What an admin sends to create or replace a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInput {
    /// Endpoint URL.
    pub url: String,
    /// Types to receive; empty: all.
    pub types: Vec<EventType>,
    /// What it is for.
    pub description: String,
    /// Whether to deliver to it (replacing only; a new webhook is enabled).
    pub enabled: bool,
}

/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Webhook use cases.
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Store,
    targets: TargetPolicy,
}

impl Webhooks {
    /// Webhooks over `store`, whose URLs must satisfy `targets`.
    pub fn new(store: Store, targets: TargetPolicy) -> Self {
        Self { store, targets }
    }

    fn check(&self, input: &WebhookInput) -> Result<String, ServiceError> {
        let mut errors = Vec::new();
        let url = match self.targets.check_url(input.url.trim()) {
            Ok(url) => url.to_string(),
            Err(e) => {
                errors.push(FieldError::new("url", e));
                String::new()
            }
        };
        if input.types.len() > EventType::ALL.len() {
            errors.push(FieldError::new(
                "types",
                format!("at most {} types (each once)", EventType::ALL.len()),
            ));
        }
        if input.description.chars().count() > MAX_DESCRIPTION_CHARS || input.description.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters without control characters"),
            ));
        }
        if errors.is_empty() {
            Ok(url)
        } else {
            Err(ServiceError::Invalid(errors))
        }
    }

    /// Creates a webhook, enabled, with a fresh signing secret; it receives the events that occur from now.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a URL the target policy refuses or a bad description; a conflict
    /// (`too-many-webhooks`) past [`MAX_WEBHOOKS`]; engine failures.
    pub async fn create(&self, input: WebhookInput) -> Result<Webhook, ServiceError> {
        let url = self.check(&input)?;
        let webhook = Webhook {
            id: Uuid::now_v7(),
            url,
            types: dedup(input.types),
            description: input.description,
            enabled: true,
            disabled_reason: None,
            created_at: timefmt::now(),
            failing_since: None,
            secret: new_secret(),
            version: 1,
        };
        match self.store.create_webhook(&webhook).await? {
            CreateWebhookOutcome::Created => Ok(webhook),
            CreateWebhookOutcome::TooMany => Err(ServiceError::conflict(
                "too-many-webhooks",
                format!("there are {MAX_WEBHOOKS} webhooks already; delete one first"),
            )),
            CreateWebhookOutcome::IdTaken => Err(ServiceError::Internal("fresh webhook id taken".into())),
        }
    }

    /// Every webhook.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn list(&self) -> Result<Vec<Webhook>, ServiceError> {
        Ok(self.store.webhooks().await?)
    }

    /// One webhook.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; engine failures.
    pub async fn get(&self, id: Uuid) -> Result<Webhook, ServiceError> {
        self.store.webhook(id).await?.ok_or(ServiceError::NotFound("webhook"))
    }

    /// Replaces webhook `id`'s URL, types, description and state, where its version is `expected` (when
    /// given). Enabling it again clears why it was disabled and its failing mark; its secret stays.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::VersionMismatch`], [`ServiceError::Invalid`]; engine
    /// failures.
    pub async fn replace(&self, id: Uuid, input: WebhookInput, expected: Option<u64>) -> Result<Webhook, ServiceError> {
        let url = self.check(&input)?;
        let current = self.get(id).await?;
        if expected.is_some_and(|v| v != current.version) {
            return Err(ServiceError::VersionMismatch);
        }
        let reenabled = input.enabled && !current.enabled;
        let webhook = Webhook {
            url,
            types: dedup(input.types),
            description: input.description,
            enabled: input.enabled,
            disabled_reason: if input.enabled {
                None
            } else {
                current.disabled_reason.clone()
            },
            failing_since: if reenabled { None } else { current.failing_since.clone() },
            version: current.version + 1,
            ..current.clone()
        };
        match self.store.replace_webhook(&webhook, current.version, &[]).await? {
            WebhookWriteOutcome::Done => Ok(webhook),
            WebhookWriteOutcome::NotFound => Err(ServiceError::NotFound("webhook")),
            WebhookWriteOutcome::VersionMismatch => Err(ServiceError::VersionMismatch),
        }
    }

    /// Deletes webhook `id`; nothing more is delivered to it.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; engine failures.
    pub async fn delete(&self, id: Uuid) -> Result<(), ServiceError> {
        match self.store.delete_webhook(id).await? {
            WebhookWriteOutcome::Done => Ok(()),
            _ => Err(ServiceError::NotFound("webhook")),
        }
    }

    /// A page of webhook `id`'s delivery attempts, newest first.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; engine failures.
    pub async fn deliveries(
        &self,
        id: Uuid,
        limit: i32,
        start: Option<&Cursor>,
    ) -> Result<Page<Attempt>, ServiceError> {
        self.get(id).await?;
        Ok(self.store.attempts_page(id, limit, Cursor::key(start)).await?.into())
    }

    /// Sends the event of attempt `attempt_id` to webhook `id` again: it goes back in the outbox, due now,
    /// with the same `webhook-id`. Returns whether it was queued (false: it is waiting in the outbox
    /// already).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown webhook or attempt; a conflict (`event-expired`) when the
    /// event is no longer kept, or (`webhook-disabled`) when the webhook is disabled; engine failures.
    pub async fn resend(&self, id: Uuid, attempt_id: Uuid) -> Result<bool, ServiceError> {
        let webhook = self.get(id).await?;
        if !webhook.enabled {
            return Err(ServiceError::conflict(
                "webhook-disabled",
                "the webhook is disabled: enable it (PUT) before resending",
            ));
        }
        let attempt = self
            .store
            .attempt(id, attempt_id)
            .await?
            .ok_or(ServiceError::NotFound("delivery"))?;
        let event = self
            .store
            .event(&attempt.occurred_at, attempt.event_id)
            .await?
            .ok_or_else(|| {
                ServiceError::conflict(
                    "event-expired",
                    "the event is past its retention period (MEDBOOK_EVENT_RETENTION_DAYS) and no longer kept",
                )
            })?;
        Ok(self.store.requeue(id, &event).await? == RequeueOutcome::Queued)
    }
}

fn dedup(types: Vec<EventType>) -> Vec<EventType> {
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}
