//! `dermis token`: a bearer token signed with the server's secret.

use std::time::Duration;

use anyhow::Context;
use dermis_auth::Role;
use dermis_server::Config;
use secrecy::SecretString;

/// Prints a token for `role` and `sub` that lives `ttl`, signed with the secret the server uses.
pub(super) fn token(config: &Config, role: &str, sub: &str, store: Option<&str>, ttl: &str) -> anyhow::Result<()> {
    let role = super::parse_role(role)?;
    if role == Role::StoreAssociate && store.is_none() {
        anyhow::bail!("a store_associate token needs --store STORE_ID");
    }
    let ttl = parse_ttl(ttl)?;
    let secret = existing_jwt_secret(config)?;
    // The same refusal `serve` gives: a token signed with a short secret would never verify.
    dermis_auth::jwt::check_secret(&secret).map_err(anyhow::Error::msg)?;
    let token = dermis_auth::jwt::issue(&secret, role, sub, store, ttl).map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(())
}

/// Parses a token lifetime (`90s`, `30m`, `12h`, `7d`; a bare number is seconds): at least one
/// second, at most [`dermis_auth::jwt::MAX_TTL`].
fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("invalid ttl unit in {s:?}; use s, m, h or d"),
    };
    let max = dermis_auth::jwt::MAX_TTL.as_secs();
    let too_long = || anyhow::anyhow!("ttl {s:?} is too long; a token lives at most {} days", max / 86_400);
    let n: u64 = match n.parse() {
        Ok(n) => n,
        // Only digits, yet no u64: the number is too large.
        Err(_) if !n.is_empty() => return Err(too_long()),
        Err(_) => anyhow::bail!("invalid ttl {s:?}; use a number and a unit such as 90s, 30m, 12h or 7d"),
    };
    let secs = n.checked_mul(unit_secs).filter(|&secs| secs <= max).ok_or_else(too_long)?;
    if secs == 0 {
        anyhow::bail!("ttl {s:?} is zero; a token must live at least a second");
    }
    Ok(Duration::from_secs(secs))
}

/// The HS256 secret for a command that signs tokens without serving: the configured one, or the
/// one `serve` (or `demo`) generated into the data dir. It is never created here: a secret made up
/// by `token` would sign tokens that the server refuses.
fn existing_jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("jwt-secret");
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(SecretString::from(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no JWT secret found: {} does not exist and DERMIS_AUTH__JWT_SECRET is not set.\n\
             `dermis serve` and `dermis demo` create that file on their first start in their data directory \
             (./dermis-data by default, relative to the folder they run in). Run this command from that folder, \
             or pass the server's data directory with --data-dir DIR, or set DERMIS_AUTH__JWT_SECRET \
             (auth.jwt_secret) to the secret the server uses.",
            shown.display()
        ),
        Err(e) => Err(e).with_context(|| format!("reading the JWT secret {}", shown.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_their_units() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_ttl("366d").unwrap(), dermis_auth::jwt::MAX_TTL);
    }

    #[test]
    fn huge_zero_and_malformed_ttls_are_clear_errors() {
        for s in ["99999999999999999d", "18446744073709551615d", "18446744073709551616", "367d", "8785h", "31622401s"] {
            let e = parse_ttl(s).unwrap_err().to_string();
            assert!(e.contains("too long") && e.contains("366 days"), "{s}: {e}");
        }
        assert!(parse_ttl("0h").unwrap_err().to_string().contains("zero"));
        for s in ["", "h", "-1h", "1.5h", " 1h", "1w", "1hh"] {
            let e = parse_ttl(s).unwrap_err().to_string();
            assert!(e.contains("invalid ttl"), "{s:?}: {e}");
        }
    }
}
