//! `dermis write-key ...` and `dermis api-key ...`: the keys event sources and machine clients
//! authenticate with.

use dermis_auth::Role;
use dermis_auth::api_keys::{ApiKeys, NewApiKey};
use dermis_server::{Config, app};

use super::{ApiKeyAction, WriteKeyAction};

/// `write-key create|list|revoke`.
pub(super) async fn write_key(config: &Config, action: WriteKeyAction) -> anyhow::Result<()> {
    let keys = dermis_events::write_keys::WriteKeys::new(app::open_store(config).await?);
    match action {
        WriteKeyAction::Create { name } => {
            let (info, key) = keys.create(&name).await?;
            eprintln!("created write key {} ({})", info.id, info.name);
            println!("{key}");
        }
        WriteKeyAction::List => {
            for k in keys.list().await? {
                let state = k.revoked_at.as_deref().map_or("active".to_owned(), |t| format!("revoked {t}"));
                println!("{}\t{}\t{}", k.id, k.name, state);
            }
        }
        WriteKeyAction::Revoke { id } => {
            if keys.revoke(&id).await? {
                println!("revoked {id}");
            } else {
                anyhow::bail!("no write key {id}");
            }
        }
    }
    Ok(())
}

/// `api-key create|list|revoke`.
pub(super) async fn api_key(config: &Config, action: ApiKeyAction) -> anyhow::Result<()> {
    let keys = ApiKeys::new(app::open_store(config).await?);
    match action {
        ApiKeyAction::Create { name, role, store, channel } => {
            let role = super::parse_role(&role)?;
            if role == Role::StoreAssociate && store.is_none() {
                anyhow::bail!("a store_associate key needs --store STORE_ID");
            }
            let (info, secret) = keys.create(NewApiKey { name, role, store_id: store, channel }).await?;
            eprintln!("created {} ({}); the key below is shown only once:", info.id, info.role);
            println!("{secret}");
        }
        ApiKeyAction::List => {
            for k in keys.list().await? {
                let state = k.revoked_at.as_deref().map_or("active".to_owned(), |t| format!("revoked {t}"));
                println!("{}\t{}\t{}\t{}\t{}", k.id, k.name, k.role, k.store_id.unwrap_or_default(), state);
            }
        }
        ApiKeyAction::Revoke { id } => {
            if keys.revoke(&id).await? {
                println!("revoked {id}");
            } else {
                anyhow::bail!("no API key {id}");
            }
        }
    }
    Ok(())
}
