//! Weather context for recommendations: UV index, humidity, temperature, PM2.5 and season at a
//! location, so the engine can raise sunscreen when UV is high and barrier repair when air is dry.
//!
//! [`WeatherProvider`] is the seam. [`OfflineWeather`] estimates season and typical clear-sky noon
//! UV from latitude and date alone (no I/O); [`OpenMeteo`] reads the Open-Meteo forecast and air
//! quality APIs with a short timeout and an hourly cache; [`WithFallback`] answers offline when
//! the primary fails. This module decides nothing about products: it only describes the weather.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// UV index from which [`Weather::high_uv`] holds: the WHO scale's "high" band starts at 6.
pub const HIGH_UV_INDEX: f32 = 6.0;
/// Relative humidity (percent) below which [`Weather::dry_air`] holds.
pub const DRY_AIR_HUMIDITY: f32 = 40.0;
/// PM2.5 (µg/m³) above which [`Weather::polluted`] holds. WHO's 2021 24-hour guideline is 15;
/// we use 25 (its 2005 24-hour guideline, the 2021 interim target 4) because Open-Meteo gives an
/// hourly reading, noisier than a daily mean, and a skin-care nudge should fire only on clearly
/// polluted air.
pub const POLLUTED_PM2_5: f32 = 25.0;
/// Latitudes within this many degrees of the equator are [`Season::Summer`] all year.
const TROPICS: f64 = 15.0;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Meteorological season: Dec–Feb is winter in the northern hemisphere, Jun–Aug in the southern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Season {
    Winter,
    Spring,
    Summer,
    Autumn,
}

/// The weather at a place and time, as far as a provider knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weather {
    pub uv_index: f32,
    /// Relative humidity in percent, when known.
    pub relative_humidity: Option<f32>,
    pub temperature_c: Option<f32>,
    /// Fine particulate matter in µg/m³, when known.
    pub pm2_5: Option<f32>,
    pub season: Season,
    /// Which provider answered: `"offline"` or `"open-meteo"`.
    pub source: &'static str,
}

impl Weather {
    /// UV index ≥ 6 (WHO "high" or worse).
    pub fn high_uv(&self) -> bool {
        self.uv_index >= HIGH_UV_INDEX
    }

    /// Relative humidity below 40%. Only a known humidity counts: winter or high latitude is
    /// never taken to mean dry air, so an offline answer is never dry.
    pub fn dry_air(&self) -> bool {
        self.relative_humidity.is_some_and(|h| h < DRY_AIR_HUMIDITY)
    }

    /// PM2.5 above 25 µg/m³ (see [`POLLUTED_PM2_5`]); unknown is not polluted.
    pub fn polluted(&self) -> bool {
        self.pm2_5.is_some_and(|p| p > POLLUTED_PM2_5)
    }
}

/// Why a provider could not answer.
#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    #[error("invalid coordinates ({latitude}, {longitude}): latitude must be in [-90, 90], longitude in [-180, 180]")]
    BadCoordinates { latitude: f64, longitude: f64 },
    #[error("{provider} request failed: {source}")]
    Http { provider: &'static str, source: reqwest::Error },
    #[error("malformed {provider} response: {reason}")]
    Malformed { provider: &'static str, reason: String },
}

/// Gives the weather at a location (degrees) and time (Unix milliseconds, UTC).
#[async_trait]
pub trait WeatherProvider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn weather(&self, latitude: f64, longitude: f64, at_ms: i64) -> Result<Weather, WeatherError>;
}

fn check_coordinates(latitude: f64, longitude: f64) -> Result<(), WeatherError> {
    if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) {
        Ok(())
    } else {
        Err(WeatherError::BadCoordinates { latitude, longitude })
    }
}

/// The UTC calendar date `(year, month, day)` of a Unix time in milliseconds (H. Hinnant's
/// `civil_from_days`, proleptic Gregorian).
fn civil_date(at_ms: i64) -> (i64, u32, u32) {
    let z = at_ms.div_euclid(MS_PER_DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Day of the year, 1 = 1 January.
fn day_of_year(at_ms: i64) -> u32 {
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let (year, month, day) = civil_date(at_ms);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    BEFORE[month as usize - 1] + day + u32::from(leap && month > 2)
}

/// Meteorological season by month, flipped south of the equator; summer within ±15° latitude,
/// where UV stays high all year and there is no winter to speak of.
fn season(latitude: f64, at_ms: i64) -> Season {
    if latitude.abs() <= TROPICS {
        return Season::Summer;
    }
    let north = match civil_date(at_ms).1 {
        12 | 1 | 2 => Season::Winter,
        3..=5 => Season::Spring,
        6..=8 => Season::Summer,
        _ => Season::Autumn,
    };
    if latitude >= 0.0 {
        return north;
    }
    match north {
        Season::Winter => Season::Summer,
        Season::Spring => Season::Autumn,
        Season::Summer => Season::Winter,
        Season::Autumn => Season::Spring,
    }
}

/// Typical clear-sky UV index at solar noon. Declination δ = 23.44°·sin(2π(284 + n)/365) (Cooper
/// 1969); noon elevation = 90° − |latitude − δ|; UVI = 12.5·cos(zenith)^2.42, the analytic
/// clear-sky formula of Madronich (2007, Photochem. Photobiol. 83:1537) at 300 DU of ozone. No
/// clouds, altitude or ozone variation, so it overestimates on cloudy days. 0 when the sun stays
/// below the horizon.
fn clear_sky_noon_uv(latitude: f64, day_of_year: u32) -> f32 {
    let declination = 23.44 * (2.0 * std::f64::consts::PI * f64::from(284 + day_of_year) / 365.0).sin();
    let elevation = 90.0 - (latitude - declination).abs();
    if elevation <= 0.0 {
        return 0.0;
    }
    (12.5 * elevation.to_radians().sin().powf(2.42)) as f32
}

/// Season and typical clear-sky noon UV from latitude and date; no humidity, temperature or PM2.5.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineWeather;

impl OfflineWeather {
    /// The estimate, synchronously (it does no I/O).
    pub fn estimate(&self, latitude: f64, longitude: f64, at_ms: i64) -> Result<Weather, WeatherError> {
        check_coordinates(latitude, longitude)?;
        Ok(Weather {
            uv_index: clear_sky_noon_uv(latitude, day_of_year(at_ms)),
            relative_humidity: None,
            temperature_c: None,
            pm2_5: None,
            season: season(latitude, at_ms),
            source: "offline",
        })
    }
}

#[async_trait]
impl WeatherProvider for OfflineWeather {
    fn name(&self) -> &'static str {
        "offline"
    }

    async fn weather(&self, latitude: f64, longitude: f64, at_ms: i64) -> Result<Weather, WeatherError> {
        self.estimate(latitude, longitude, at_ms)
    }
}

/// Default request timeout for [`OpenMeteo`]: a recommendation should not wait longer.
pub const OPEN_METEO_TIMEOUT: Duration = Duration::from_millis(800);
const CACHE_CAPACITY: usize = 1024;
const OPEN_METEO: &str = "open-meteo";

/// Coordinates in tenths of a degree and the hour since the Unix epoch.
type CacheKey = (i32, i32, i64);

#[derive(Deserialize)]
struct Current<T> {
    current: T,
}

#[derive(Deserialize)]
struct ForecastNow {
    temperature_2m: Option<f32>,
    relative_humidity_2m: Option<f32>,
    uv_index: Option<f32>,
}

#[derive(Deserialize)]
struct AirQualityNow {
    pm2_5: Option<f32>,
}

/// Current conditions from the Open-Meteo forecast API (`/v1/forecast`, temperature, humidity,
/// UV) and air-quality API (`/v1/air-quality`, PM2.5; its failure only leaves PM2.5 unknown).
///
/// Coordinates are rounded to 0.1° (about 11 km) before they are sent, so a customer's exact
/// location never leaves the service, and answers are cached per rounded coordinates and UTC hour
/// of `at_ms` (at most 1,024 entries). The API gives the conditions *now*: `at_ms` only picks the
/// season and the cache hour. The season follows the offline rule.
pub struct OpenMeteo {
    base_url: String,
    air_quality_url: String,
    client: reqwest::Client,
    timeout: Duration,
    cache: Mutex<HashMap<CacheKey, Weather>>,
}

impl Default for OpenMeteo {
    /// The public endpoints `https://api.open-meteo.com` and `https://air-quality-api.open-meteo.com`.
    fn default() -> Self {
        OpenMeteo::new("https://api.open-meteo.com", "https://air-quality-api.open-meteo.com")
    }
}

impl OpenMeteo {
    /// A provider for the given forecast and air-quality base URLs (without `/v1/...`).
    pub fn new(base_url: impl Into<String>, air_quality_url: impl Into<String>) -> Self {
        OpenMeteo {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            air_quality_url: air_quality_url.into().trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            timeout: OPEN_METEO_TIMEOUT,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the per-request timeout (default 800 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses a shared or specially configured HTTP client.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    async fn current<T: DeserializeOwned>(&self, url: &str, query: &[(&str, &str)]) -> Result<T, WeatherError> {
        let http = |source| WeatherError::Http { provider: OPEN_METEO, source };
        let response = self
            .client
            .get(url)
            .query(query)
            .timeout(self.timeout)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http)?;
        let body = response.bytes().await.map_err(http)?;
        let parsed: Current<T> = serde_json::from_slice(&body)
            .map_err(|e| WeatherError::Malformed { provider: OPEN_METEO, reason: e.to_string() })?;
        Ok(parsed.current)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Weather>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WeatherProvider for OpenMeteo {
    fn name(&self) -> &'static str {
        OPEN_METEO
    }

    async fn weather(&self, latitude: f64, longitude: f64, at_ms: i64) -> Result<Weather, WeatherError> {
        check_coordinates(latitude, longitude)?;
        let key = ((latitude * 10.0).round() as i32, (longitude * 10.0).round() as i32, at_ms.div_euclid(MS_PER_HOUR));
        if let Some(cached) = self.cache().get(&key) {
            return Ok(cached.clone());
        }
        let (lat, lon) = (format!("{:.1}", f64::from(key.0) / 10.0), format!("{:.1}", f64::from(key.1) / 10.0));
        let (forecast_url, air_url) =
            (format!("{}/v1/forecast", self.base_url), format!("{}/v1/air-quality", self.air_quality_url));
        let forecast_query =
            [("latitude", &*lat), ("longitude", &lon), ("current", "temperature_2m,relative_humidity_2m,uv_index")];
        let forecast_query = [forecast_query.as_slice(), &[("timezone", "UTC")]].concat();
        let air_query = [("latitude", &*lat), ("longitude", &lon), ("current", "pm2_5")];
        let (now, air) = tokio::join!(
            self.current::<ForecastNow>(&forecast_url, &forecast_query),
            self.current::<AirQualityNow>(&air_url, &air_query),
        );
        let now = now?;
        let malformed = |reason: &str| WeatherError::Malformed { provider: OPEN_METEO, reason: reason.to_owned() };
        let uv_index = now.uv_index.ok_or_else(|| malformed("no current.uv_index"))?;
        if uv_index < 0.0 {
            return Err(malformed("negative current.uv_index"));
        }
        if now.relative_humidity_2m.is_some_and(|h| !(0.0..=100.0).contains(&h)) {
            return Err(malformed("current.relative_humidity_2m outside 0..=100"));
        }
        let pm2_5 = match air {
            Ok(air) => air.pm2_5.filter(|p| *p >= 0.0),
            Err(error) => {
                tracing::warn!(%error, "open-meteo air quality unavailable; PM2.5 unknown");
                None
            }
        };
        let weather = Weather {
            uv_index,
            relative_humidity: now.relative_humidity_2m,
            temperature_c: now.temperature_2m,
            pm2_5,
            season: season(latitude, at_ms),
            source: OPEN_METEO,
        };
        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|k, _| k.2 == key.2);
            if let Some(any) = cache.keys().next().copied().filter(|_| cache.len() >= CACHE_CAPACITY) {
                cache.remove(&any);
            }
        }
        cache.insert(key, weather.clone());
        Ok(weather)
    }
}

/// Asks `primary` and, when it fails for any reason but bad coordinates, answers from `fallback`
/// (logging one warning per failure).
pub struct WithFallback {
    pub primary: Arc<dyn WeatherProvider>,
    pub fallback: OfflineWeather,
}

impl WithFallback {
    pub fn new(primary: Arc<dyn WeatherProvider>) -> Self {
        WithFallback { primary, fallback: OfflineWeather }
    }
}

#[async_trait]
impl WeatherProvider for WithFallback {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    async fn weather(&self, latitude: f64, longitude: f64, at_ms: i64) -> Result<Weather, WeatherError> {
        match self.primary.weather(latitude, longitude, at_ms).await {
            Err(error @ WeatherError::BadCoordinates { .. }) => Err(error),
            Err(error) => {
                tracing::warn!(provider = self.primary.name(), %error, "weather provider failed; answering offline");
                self.fallback.estimate(latitude, longitude, at_ms)
            }
            ok => ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    // Noon UTC on these dates.
    const JUL_15_2024: i64 = 1_721_044_800_000;
    const DEC_15_2024: i64 = 1_734_264_000_000;
    const JAN_15_2025: i64 = 1_736_942_400_000;
    const PARIS: (f64, f64) = (48.86, 2.34);
    const SYDNEY: (f64, f64) = (-33.87, 151.21);

    #[test]
    fn offline_follows_latitude_and_date() {
        let paris_july = OfflineWeather.estimate(PARIS.0, PARIS.1, JUL_15_2024).unwrap();
        assert_eq!((paris_july.season, paris_july.source), (Season::Summer, "offline"));
        assert!(paris_july.uv_index >= 6.0 && paris_july.high_uv(), "{paris_july:?}");
        assert!(!paris_july.dry_air() && !paris_july.polluted());
        let paris_december = OfflineWeather.estimate(PARIS.0, PARIS.1, DEC_15_2024).unwrap();
        assert_eq!(paris_december.season, Season::Winter);
        assert!(paris_december.uv_index <= 2.0, "{paris_december:?}");
        assert_eq!(OfflineWeather.estimate(SYDNEY.0, SYDNEY.1, JAN_15_2025).unwrap().season, Season::Summer);
        assert_eq!(OfflineWeather.estimate(SYDNEY.0, SYDNEY.1, JUL_15_2024).unwrap().season, Season::Winter);
        for month in 0..12 {
            let w = OfflineWeather.estimate(0.0, 30.0, JAN_15_2025 + month * 30 * MS_PER_DAY).unwrap();
            assert!(w.uv_index >= 8.0 && w.season == Season::Summer, "month {month}: {w:?}");
        }
        assert_eq!(OfflineWeather.estimate(89.0, 0.0, DEC_15_2024).unwrap().uv_index, 0.0);
    }

    #[test]
    fn calendar_and_bad_coordinates() {
        assert_eq!(civil_date(JAN_15_2025), (2025, 1, 15));
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(day_of_year(JUL_15_2024), 197); // 2024 is a leap year
        assert_eq!(day_of_year(DEC_15_2024 + 16 * MS_PER_DAY), 366);
        for (lat, lon) in [(91.0, 0.0), (f64::NAN, 0.0), (0.0, 181.0), (0.0, f64::INFINITY)] {
            let err = OfflineWeather.estimate(lat, lon, JUL_15_2024).unwrap_err();
            assert!(matches!(err, WeatherError::BadCoordinates { .. }), "{err}");
        }
        assert!(OfflineWeather.estimate(0.0, 0.0, i64::MIN).is_ok());
    }

    #[test]
    fn thresholds() {
        let mut w = OfflineWeather.estimate(PARIS.0, PARIS.1, DEC_15_2024).unwrap();
        w.relative_humidity = Some(39.0);
        w.pm2_5 = Some(30.0);
        assert!(w.dry_air() && w.polluted() && !w.high_uv());
        w.relative_humidity = Some(40.0);
        w.pm2_5 = Some(25.0);
        assert!(!w.dry_air() && !w.polluted());
        assert_eq!(serde_json::to_value(Season::Autumn).unwrap(), "autumn");
    }

    #[derive(Default)]
    struct Stub {
        forecast_hits: AtomicUsize,
        air_hits: AtomicUsize,
        forecast_query: Mutex<HashMap<String, String>>,
    }

    type Canned = (StatusCode, &'static str);

    /// Serves `forecast` and `air` on 127.0.0.1 and returns a provider pointed at it.
    async fn stub(forecast: Canned, air: Canned) -> (OpenMeteo, Arc<Stub>) {
        let stub = Arc::new(Stub::default());
        let (s1, s2) = (stub.clone(), stub.clone());
        const JSON: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "application/json")];
        let app = axum::Router::new()
            .route(
                "/v1/forecast",
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    s1.forecast_hits.fetch_add(1, SeqCst);
                    *s1.forecast_query.lock().unwrap() = q;
                    (forecast.0, JSON, forecast.1)
                }),
            )
            .route(
                "/v1/air-quality",
                get(move || async move {
                    s2.air_hits.fetch_add(1, SeqCst);
                    (air.0, JSON, air.1)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        (OpenMeteo::new(&url, &url).with_client(client), stub)
    }

    const FORECAST: Canned = (
        StatusCode::OK,
        r#"{"latitude":48.86,"current":{"time":"2024-07-15T12:00","temperature_2m":21.3,"relative_humidity_2m":35,"uv_index":6.1}}"#,
    );
    const AIR: Canned = (StatusCode::OK, r#"{"current":{"time":"2024-07-15T12:00","pm2_5":12.0}}"#);
    const FAIL: Canned = (StatusCode::INTERNAL_SERVER_ERROR, "boom");

    #[tokio::test]
    async fn open_meteo_reads_current_conditions() {
        let (provider, stub) = stub(FORECAST, AIR).await;
        let w = provider.weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap();
        let expected = Weather {
            uv_index: 6.1,
            relative_humidity: Some(35.0),
            temperature_c: Some(21.3),
            pm2_5: Some(12.0),
            season: Season::Summer,
            source: "open-meteo",
        };
        assert_eq!(w, expected);
        assert!(w.high_uv() && w.dry_air() && !w.polluted());
        let query = stub.forecast_query.lock().unwrap().clone();
        assert_eq!((query["latitude"].as_str(), query["longitude"].as_str()), ("48.9", "2.3"));
        assert_eq!(query["current"], "temperature_2m,relative_humidity_2m,uv_index");
        assert_eq!(stub.air_hits.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn open_meteo_failures_are_errors() {
        let (provider, _) = stub(FAIL, AIR).await;
        let err = provider.weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap_err();
        assert!(matches!(err, WeatherError::Http { .. }), "{err}");
        for body in [r#"{"current": {"uv_index": "#, r#"{"current":{"temperature_2m":3.0}}"#, "[]"] {
            let (provider, _) = stub((StatusCode::OK, body), AIR).await;
            let err = provider.weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap_err();
            assert!(matches!(err, WeatherError::Malformed { .. }), "{body}: {err}");
        }
        let (provider, stub) = stub(FORECAST, AIR).await;
        let err = provider.weather(f64::NAN, 0.0, JUL_15_2024).await.unwrap_err();
        assert!(matches!(err, WeatherError::BadCoordinates { .. }));
        assert_eq!(stub.forecast_hits.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn air_quality_failure_leaves_pm2_5_unknown() {
        let (provider, _) = stub(FORECAST, FAIL).await;
        let w = provider.weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap();
        assert_eq!((w.pm2_5, w.uv_index, w.source), (None, 6.1, "open-meteo"));
    }

    #[tokio::test]
    async fn fallback_answers_offline_when_the_api_fails() {
        let (provider, _) = stub(FAIL, FAIL).await;
        let with_fallback = WithFallback::new(Arc::new(provider));
        let w = with_fallback.weather(SYDNEY.0, SYDNEY.1, JAN_15_2025).await.unwrap();
        assert_eq!(w, OfflineWeather.estimate(SYDNEY.0, SYDNEY.1, JAN_15_2025).unwrap());
        assert!(with_fallback.weather(91.0, 0.0, JAN_15_2025).await.is_err());
        let (provider, _) = stub(FORECAST, AIR).await;
        let w = WithFallback::new(Arc::new(provider)).weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap();
        assert_eq!(w.source, "open-meteo");
    }

    #[tokio::test]
    async fn cache_serves_the_same_place_and_hour() {
        let (provider, stub) = stub(FORECAST, AIR).await;
        let first = provider.weather(PARIS.0, PARIS.1, JUL_15_2024).await.unwrap();
        let nearby = provider.weather(PARIS.0 + 0.02, PARIS.1, JUL_15_2024 + 60_000).await.unwrap();
        assert_eq!(first, nearby);
        assert_eq!((stub.forecast_hits.load(SeqCst), stub.air_hits.load(SeqCst)), (1, 1));
        provider.weather(PARIS.0, PARIS.1, JUL_15_2024 + MS_PER_HOUR).await.unwrap();
        provider.weather(SYDNEY.0, SYDNEY.1, JUL_15_2024).await.unwrap();
        assert_eq!(stub.forecast_hits.load(SeqCst), 3);
    }
}
