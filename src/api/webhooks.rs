//! `/v1/webhooks`: endpoints that receive domain events (admin), and each one's deliveries log.

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState,
    error::ApiError,
    extract::{IfMatch, Json, Path, Query, etag},
    paging::{ListRequest, Page, PageParams},
};
use crate::{
    auth::{Caller, Role},
    domain::{
        event::EventType,
        webhook::{Attempt, AttemptOutcome, Webhook},
    },
    service::{Expected, webhooks::WebhookInput},
};

/// Webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, replace_webhook, delete_webhook))
        .routes(routes!(deliveries))
        .routes(routes!(resend))
}

/// A webhook to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "url": "https://ehr.example.org/hooks/medbook", "types": ["result.released", "result.critical"],
    "description": "EHR inbox"
}))]
pub struct CreateWebhook {
    /// Where events are POSTed: `https` (with `MEDBOOK_WEBHOOK_TARGETS=loopback`, also `http` to this
    /// machine), never a private, loopback or link-local address unless `MEDBOOK_WEBHOOK_TARGETS=any`.
    #[schema(max_length = 2000)]
    pub url: String,
    /// Event types to receive; empty or absent: all.
    #[serde(default)]
    #[schema(max_items = 15)]
    pub types: Vec<EventType>,
    /// What it is for (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

/// A webhook's new state (PUT replaces URL, types, description and `enabled`; the secret stays).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "url": "https://ehr.example.org/hooks/medbook", "types": [], "description": "EHR inbox", "enabled": true
}))]
pub struct ReplaceWebhook {
    /// Endpoint URL (as for creation).
    #[schema(max_length = 2000)]
    pub url: String,
    /// Types; empty: all.
    #[serde(default)]
    #[schema(max_items = 15)]
    pub types: Vec<EventType>,
    /// What it is for.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// Whether to deliver to it. `true` on a disabled webhook enables it again and clears its failing mark;
    /// the events that occurred while it was disabled are not queued for it (the feed, `GET /v1/events`,
    /// has them).
    pub enabled: bool,
}

/// A webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b", "url": "https://ehr.example.org/hooks/medbook",
    "types": ["result.released"], "description": "EHR inbox", "enabled": true,
    "createdAt": "2026-12-01T09:00:00.000Z", "version": 1
}))]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Endpoint URL.
    pub url: String,
    /// Types it receives; empty: all.
    pub types: Vec<EventType>,
    /// What it is for.
    pub description: String,
    /// Whether events are delivered to it.
    pub enabled: bool,
    /// Why medbook disabled it (a 410, or failing for `MEDBOOK_WEBHOOK_DISABLE_AFTER_HOURS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When it was created: it receives the events that occurred from then on.
    pub created_at: String,
    /// Since when every attempt has failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// Version (also the ETag).
    pub version: u64,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            types: w.types,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            failing_since: w.failing_since,
            version: w.version,
        }
    }
}

/// A webhook just created, with its signing secret: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b", "url": "https://ehr.example.org/hooks/medbook",
    "types": [], "description": "EHR inbox", "enabled": true, "createdAt": "2026-12-01T09:00:00.000Z",
    "version": 1, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
}))]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The Standard Webhooks signing secret (`whsec_` + base64): verify each delivery's
    /// `webhook-signature` with it. It is not shown again.
    pub secret: String,
}

/// Every webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"items": []}))]
pub struct WebhookList {
    /// The webhooks (at most 20).
    pub items: Vec<WebhookView>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f9999", "eventId": "0194f3a2-7c1e-7d2a-9b1f-3c4d5e6f7a8b",
    "eventType": "booking.created", "occurredAt": "2026-12-01T09:00:00.000Z",
    "attemptedAt": "2026-12-01T09:00:00.310Z", "status": 200, "latencyMs": 42, "outcome": "delivered",
    "attempt": 1
}))]
pub struct DeliveryView {
    /// Attempt id (resend with it).
    pub id: Uuid,
    /// The event: the `webhook-id` header of the delivery.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// Its patient, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<Uuid>,
    /// When the event occurred.
    pub occurred_at: String,
    /// When this attempt was sent.
    pub attempted_at: String,
    /// The HTTP status, when the endpoint answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time to the answer or the failure.
    pub latency_ms: u64,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Which attempt at this event (1: the first).
    pub attempt: u32,
}

impl From<Attempt> for DeliveryView {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            event_id: a.event_id,
            event_type: a.event_type,
            patient_id: a.patient_id,
            occurred_at: a.occurred_at,
            attempted_at: a.attempted_at,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            outcome: a.outcome,
            attempt: a.attempt,
        }
    }
}

/// What a resend did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"queued": true}))]
pub struct Resent {
    /// `true`: the event is queued again; `false`: it was waiting in the outbox already.
    pub queued: bool,
}

fn with_etag(version: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, v);
    }
    headers
}

/// Creates a webhook (admin). It receives the events of its types that occur from now on, signed by the
/// Standard Webhooks convention with the secret in this response (shown once). Each event is retried with
/// backoff for 24 h until the endpoint answers 2xx; a 410 disables it.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "created; the secret is shown this once", body = CreatedWebhook,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "malformed JSON"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 409, description = "there are 20 webhooks already (`too-many-webhooks`)"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "a URL the target policy refuses, an unknown type, a bad description"),
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateWebhook>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Json(body) = body?;
    let webhook = state
        .webhooks
        .create(WebhookInput {
            url: body.url,
            types: body.types,
            description: body.description,
            enabled: true,
        })
        .await?;
    let mut headers = with_etag(webhook.version);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/webhooks/{}", webhook.id)) {
        headers.insert(header::LOCATION, v);
    }
    let secret = webhook.secret.clone();
    Ok((
        StatusCode::CREATED,
        headers,
        axum::Json(CreatedWebhook {
            webhook: webhook.into(),
            secret,
        }),
    ))
}

/// Every webhook (admin), without secrets.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the webhooks", body = WebhookList),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
    )
)]
async fn list_webhooks(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<WebhookList>, ApiError> {
    caller.require(&[Role::Admin])?;
    let items = state
        .webhooks
        .list()
        .await?
        .into_iter()
        .map(WebhookView::from)
        .collect();
    Ok(axum::Json(WebhookList { items }))
}

/// One webhook (admin), without its secret.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhookId}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path, description = "Webhook")),
    responses(
        (status = 200, description = "the webhook", body = WebhookView, headers(("ETag" = String))),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 404, description = "no such webhook"),
    )
)]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let webhook = state.webhooks.get(id).await?;
    Ok((with_etag(webhook.version), axum::Json(WebhookView::from(webhook))))
}

/// Replaces a webhook's URL, types, description and state (admin), where `If-Match` names its version.
#[utoipa::path(
    put,
    path = "/v1/webhooks/{webhookId}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("webhookId" = Uuid, Path, description = "Webhook"),
        ("If-Match" = String, Header, description = "The webhook's ETag, or `*`"),
    ),
    request_body = ReplaceWebhook,
    responses(
        (status = 200, description = "replaced", body = WebhookView, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON, id or If-Match"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 404, description = "no such webhook"),
        (status = 412, description = "the webhook changed since it was read"),
        (status = 415, description = "not JSON"),
        (status = 422, description = "a URL the target policy refuses, an unknown type, a bad description"),
        (status = 428, description = "If-Match is required"),
    )
)]
async fn replace_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    IfMatch(expected): IfMatch,
    body: Result<Json<ReplaceWebhook>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Json(body) = body?;
    let version = match expected {
        Expected::Any => None,
        Expected::Version(v) => Some(v),
    };
    let webhook = state
        .webhooks
        .replace(
            id,
            WebhookInput {
                url: body.url,
                types: body.types,
                description: body.description,
                enabled: body.enabled,
            },
            version,
        )
        .await?;
    Ok((with_etag(webhook.version), axum::Json(WebhookView::from(webhook))))
}

/// Deletes a webhook (admin): nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhookId}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path, description = "Webhook")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 404, description = "no such webhook"),
    )
)]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    state.webhooks.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's delivery attempts (admin), newest first: time, HTTP status, latency, error, outcome. One
/// Query per page.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhookId}/deliveries",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path, description = "Webhook"), PageParams),
    responses(
        (status = 200, description = "a page of attempts", body = Page<DeliveryView>),
        (status = 400, description = "malformed id or cursor"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 404, description = "no such webhook"),
        (status = 422, description = "invalid limit"),
    )
)]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<Page<DeliveryView>>, ApiError> {
    caller.require(&[Role::Admin])?;
    let list = ListRequest::new(&state, uri.path(), &[], &page, 20)?;
    let found = state.webhooks.deliveries(id, list.limit(), list.start()).await?;
    Ok(axum::Json(list.page(&state, found, DeliveryView::from)))
}

/// Sends an attempt's event to the webhook again (admin): it goes back in the outbox, due now, with the
/// same `webhook-id`, so a receiver that has it already can tell.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{webhookId}/deliveries/{deliveryId}/resend",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("webhookId" = Uuid, Path, description = "Webhook"),
        ("deliveryId" = Uuid, Path, description = "A delivery attempt of the event"),
    ),
    responses(
        (status = 202, description = "queued (or waiting in the outbox already)", body = Resent),
        (status = 400, description = "malformed id"),
        (status = 401, description = "no valid token"),
        (status = 403, description = "only an admin manages webhooks"),
        (status = 404, description = "no such webhook or attempt"),
        (status = 409, description = "the webhook is disabled (`webhook-disabled`), or the event is past its retention (`event-expired`)"),
    )
)]
async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, attempt)): Path<(Uuid, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let queued = state.webhooks.resend(id, attempt).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Resent { queued })))
}
