//! Webhook subscriptions to channel availability: create, list, delete, and the deliveries that
//! failed every try.

use super::*;
use crate::webhooks::{DeadLetter, Webhook};

pub(super) fn router() -> OpenApiRouter<InventoryState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(dead_letters))
}

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST (`https://`, or `http://` for a receiver inside the brand's network).
    pub url: String,
    /// The channels whose availability to send (`web`, `app`, `pos`, `marketplace:NAME`).
    pub channels: Vec<String>,
    /// The signing secret (16 to 128 characters); generated when absent.
    pub secret: Option<String>,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// `whk_...`.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The channels it follows.
    pub channels: Vec<String>,
    /// When it was created.
    pub created_at: String,
    /// The signing secret: shown once, when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_view(hook: &Webhook, secret: Option<String>) -> WebhookView {
    WebhookView {
        id: hook.id.clone(),
        url: hook.url.clone(),
        channels: hook.channels.iter().map(ToString::to_string).collect(),
        created_at: rfc3339(hook.created_at_ms),
        secret,
    }
}

/// Subscribes a URL to the availability of channels: when a SKU's stock moves, its
/// availability on them is POSTed there, signed with `Dermis-Signature: t=SECONDS,v1=HEX`
/// (HMAC-SHA256 of `SECONDS.BODY`), retried with backoff, and listed as dead after the last try.
#[utoipa::path(post, path = "/v1/webhooks", tag = "inventory", request_body = NewWebhook,
    responses((status = 201, body = WebhookView), (status = 422, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn create_webhook(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), Problem> {
    let url = body.url.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2000 || reqwest::Url::parse(url).is_err() {
        return Err(field("url", "must be an http:// or https:// URL"));
    }
    if body.channels.is_empty() || body.channels.len() > 50 {
        return Err(field("channels", "1 to 50 channels"));
    }
    let mut channels = Vec::new();
    for (i, raw) in body.channels.iter().enumerate() {
        let channel = parse_channel(&format!("channels[{i}]"), raw)?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let secret = match body.secret {
        Some(secret) if (16..=128).contains(&secret.len()) && secret.chars().all(|c| c.is_ascii_graphic()) => secret,
        Some(_) => return Err(field("secret", "16 to 128 visible ASCII characters")),
        None => format!(
            "whsec_{}{}",
            ulid::Ulid::new().to_string().to_lowercase(),
            ulid::Ulid::new().to_string().to_lowercase()
        ),
    };
    let hook = s.webhooks.create(url, &channels, &secret).await.map_err(|e| Problem::unavailable(&e))?;
    Ok((StatusCode::CREATED, Json(webhook_view(&hook, Some(secret)))))
}

/// Active subscriptions (without their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "inventory",
    responses((status = 200, body = [WebhookView]), (status = 403, body = ProblemBody)), security(("bearer" = [])))]
async fn list_webhooks(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
) -> Result<Json<Vec<WebhookView>>, Problem> {
    let hooks = s.webhooks.list().await.map_err(|e| Problem::unavailable(&e))?;
    Ok(Json(hooks.iter().map(|h| webhook_view(h, None)).collect()))
}

/// Ends a subscription; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "inventory", params(("id" = String, Path)),
    responses((status = 204, description = "ended"), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn delete_webhook(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    match s.webhooks.delete(&id).await.map_err(|e| Problem::unavailable(&e))? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Problem::not_found(format!("no webhook {id}"))),
    }
}

/// A delivery that failed every try.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The delivery.
    pub id: String,
    /// The SKU.
    pub sku_id: String,
    /// The SKU's sequence when it changed.
    pub sequence: i64,
    /// Tries made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Deliveries of a subscription that failed every try, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/dead-letters", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = [DeadLetterView]), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn dead_letters(
    Auth(_who, ..): Auth<InventorySetup>,
    State(s): State<InventoryState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<DeadLetterView>>, Problem> {
    if !s.webhooks.exists(&id).await.map_err(|e| Problem::unavailable(&e))? {
        return Err(Problem::not_found(format!("no webhook {id}")));
    }
    let dead = s.webhooks.dead_letters(&id).await.map_err(|e| Problem::unavailable(&e))?;
    Ok(Json(
        dead.into_iter()
            .map(|d: DeadLetter| DeadLetterView {
                id: d.id,
                sku_id: d.sku,
                sequence: d.sequence,
                attempts: d.attempts,
                last_error: d.last_error,
            })
            .collect(),
    ))
}
