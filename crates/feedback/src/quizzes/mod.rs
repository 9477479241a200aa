//! Quizzes, polls and surveys (what Zigpoll sells as a service): definitions with branching and
//! the profile field an option sets, responses checked against them and turned into Segment
//! events through ingestion (a quiz: `Skin Quiz Completed`, which the customers domain turns into
//! skin facts with source `quiz`; a survey: `Survey Response`, and `Reaction Reported` for a
//! post-purchase "did it suit your skin?"; a poll: `Poll Answer`), response rates, answer
//! distributions and a breakdown by skin type. It owns the `feedback_quiz*` tables,
//! `/v1/quizzes...` and the embeddable widget `/widget/dermis.js` (`assets/dermis.js`).
//!
//! - [`model`]: a definition and a response, checked.
//! - [`store`]: the SQL.
//! - [`routes`]: the HTTP routes and the widget.
//!
//! Visitors are kept under the events domain's keyed pseudonyms; free-text answers are not kept
//! here, only in the event (where an erasure finds them). Responses of erased customers are
//! refused.

pub mod model;
pub mod routes;
pub mod store;

use std::collections::BTreeMap;

use dermis_core::FieldError;
use dermis_core::clock::SharedClock;
use dermis_customers::Customers;
use dermis_customers::crypto::LookupKind;
use dermis_events::ingest::Ingestor;
use dermis_store::{Db, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub use model::{AnswerBody, QuizDefinition, QuizKind};
pub use routes::{QuizzesState, public_path, router, widget_router};

use model::{Answer, Facts, QuestionType, SetsField};

/// The write key responses sent with a bearer token (a shop's backend) are ingested under.
pub const SOURCE: &str = "dermis-quizzes";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    /// The definition or the response is invalid (each problem by field).
    #[error("invalid")]
    Invalid(Vec<FieldError>),
    /// No such quiz.
    #[error("no quiz {0}")]
    NotFound(String),
    /// The key is taken.
    #[error("quiz {0} already exists")]
    Exists(String),
    /// The respondent is an erased customer.
    #[error("{0} belongs to an erased customer: their responses are not accepted")]
    Erased(&'static str),
    /// Another domain failed.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who sends a response.
#[derive(Debug, Clone, Default)]
pub struct Respondent {
    /// The user id the shop knows.
    pub user_id: Option<String>,
    /// The device's anonymous id.
    pub anonymous_id: Option<String>,
}

/// A response as received.
#[derive(Debug, Clone, Default)]
pub struct NewResponse {
    /// Who.
    pub respondent: Respondent,
    /// The answers.
    pub answers: Vec<AnswerBody>,
    /// The client's message id (a retry is stored and ingested once).
    pub message_id: Option<String>,
    /// The product a post-purchase survey is about.
    pub product_id: Option<String>,
}

/// A response as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseReceipt {
    /// The message id its events carry.
    pub message_id: String,
    /// The quiz.
    pub quiz: String,
    /// What the answers set (skin type, concerns, a reaction).
    pub sets: Facts,
    /// The events ingested (`Skin Quiz Completed`, `Survey Response`, `Poll Answer`,
    /// `Reaction Reported`).
    pub events: Vec<String>,
    /// False when the same message id was received before (nothing stored again).
    pub stored: bool,
}

/// An option's count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OptionCount {
    /// The option.
    pub option: String,
    /// Its label.
    pub label: String,
    /// Responses choosing it.
    pub count: u64,
}

/// One question's answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuestionStats {
    /// The question.
    pub question: String,
    /// Its text.
    pub text: String,
    /// Responses answering it.
    pub answered: u64,
    /// Per option (choice questions), in the definition's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionCount>,
    /// Per rating 1 to 5 (rating questions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratings: Option<[u64; 5]>,
    /// The mean rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_rating: Option<f64>,
}

/// The answers of the responses of one skin type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentStats {
    /// The skin type (`unknown` for responses that set none).
    pub skin_type: String,
    /// Responses.
    pub responses: u64,
    /// Per question.
    pub questions: Vec<QuestionStats>,
}

/// A quiz's statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuizStats {
    /// The quiz.
    pub quiz: String,
    /// Responses.
    pub responses: u64,
    /// Widget views logged.
    pub impressions: u64,
    /// Responses per view (absent without views).
    pub response_rate: Option<f64>,
    /// Per question.
    pub questions: Vec<QuestionStats>,
    /// Per skin type (the answer to the question setting it; empty when none does).
    pub segments: Vec<SegmentStats>,
}

/// The quizzes' service. Cheap to clone.
#[derive(Clone)]
pub struct Quizzes {
    db: Db,
    clock: SharedClock,
    ingestor: Ingestor,
    customers: Customers,
}

impl std::fmt::Debug for Quizzes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quizzes").finish_non_exhaustive()
    }
}

impl Quizzes {
    /// Over `db`; responses become events through `ingestor`; `customers` says who was erased.
    pub fn new(db: Db, clock: SharedClock, ingestor: Ingestor, customers: Customers) -> Self {
        Self { db, clock, ingestor, customers }
    }

    /// The ingestion (its write keys authenticate the widget).
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// Defines a quiz.
    pub async fn create(&self, quiz: QuizDefinition) -> Result<QuizDefinition, QuizError> {
        let problems = quiz.problems();
        if !problems.is_empty() {
            return Err(QuizError::Invalid(problems));
        }
        if !store::insert(&self.db, &quiz, self.clock.now_ms()).await? {
            return Err(QuizError::Exists(quiz.key));
        }
        Ok(quiz)
    }

    /// One quiz.
    pub async fn get(&self, key: &str) -> Result<QuizDefinition, QuizError> {
        store::get(&self.db, key).await?.ok_or_else(|| QuizError::NotFound(key.to_owned()))
    }

    /// Counts a widget view.
    pub async fn impression(&self, key: &str) -> Result<(), QuizError> {
        self.get(key).await?;
        Ok(store::count_impression(&self.db, key).await?)
    }

    /// Checks a response against the quiz, refuses an erased customer's, ingests its events
    /// under `write_key_id` (or this domain's own write key) and stores it. Nothing is stored
    /// when any check fails.
    pub async fn respond(
        &self,
        key: &str,
        write_key_id: Option<String>,
        r: NewResponse,
    ) -> Result<ResponseReceipt, QuizError> {
        let quiz = self.get(key).await?;
        let mut errors = Vec::new();
        let who = &r.respondent;
        for (name, id) in [("user_id", &who.user_id), ("anonymous_id", &who.anonymous_id)] {
            if id.as_ref().is_some_and(|v| v.trim().is_empty() || v.len() > 256) {
                errors.push(FieldError::new(name, "1 to 256 characters"));
            }
        }
        if who.user_id.is_none() && who.anonymous_id.is_none() {
            errors.push(FieldError::new("anonymous_id", "a user_id or an anonymous_id is needed"));
        }
        if r.message_id.as_ref().is_some_and(|m| m.trim().is_empty() || m.len() > 200) {
            errors.push(FieldError::new("message_id", "1 to 200 characters"));
        }
        if r.product_id.as_ref().is_some_and(|m| m.trim().is_empty() || m.len() > 512) {
            errors.push(FieldError::new("context.product_id", "1 to 512 characters"));
        }
        let checked = match model::check(&quiz, &r.answers) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        if let Some(c) = &checked
            && c.facts.reaction.is_some()
            && r.product_id.is_none()
        {
            errors.push(FieldError::new("context.product_id", "a reported reaction needs the product it is about"));
        }
        let Some(checked) = checked.filter(|_| errors.is_empty()) else { return Err(QuizError::Invalid(errors)) };
        for (name, kind, id) in [
            ("user_id", LookupKind::UserId, &who.user_id),
            ("anonymous_id", LookupKind::AnonymousId, &who.anonymous_id),
        ] {
            if let Some(id) = id {
                let erased = self
                    .customers
                    .identifier_suppressed(kind, id)
                    .await
                    .map_err(|e| QuizError::Unavailable(format!("the customers' erasures cannot be read: {e}")))?;
                if erased {
                    return Err(QuizError::Erased(name));
                }
            }
        }
        let message_id = r.message_id.clone().unwrap_or_else(|| dermis_core::ids::new_id("qzr"));
        let events = self.events(&quiz, &checked, &r, &message_id);
        let names: Vec<String> = events.iter().filter_map(|e| e["event"].as_str()).map(str::to_owned).collect();
        let source = match write_key_id {
            Some(id) => id,
            None => {
                self.source().await.map_err(|e| QuizError::Unavailable(format!("no write key for quizzes: {e}")))?
            }
        };
        let result = self
            .ingestor
            .ingest_as(source, None, json!({ "batch": events }))
            .await
            .map_err(|e| QuizError::Unavailable(format!("the response's events were not ingested: {e}")))?;
        if !result.rejected.is_empty() {
            let errors = result
                .rejected
                .iter()
                .map(|f| FieldError::new("answers", format!("the event was refused: {}", f.reason)))
                .collect();
            return Err(QuizError::Invalid(errors));
        }
        let visitor = who.user_id.as_deref().or(who.anonymous_id.as_deref()).unwrap_or_default();
        let visitor_key = self.ingestor.pseudonyms().customer(visitor);
        let stored = store::insert_response(
            &self.db,
            &store::NewResponse {
                id: &dermis_core::ids::new_id("qzr"),
                quiz: key,
                message_key: &message_id,
                visitor_key: &visitor_key,
                answers: &checked.answers,
                skin_type: checked.facts.skin_type.as_deref(),
            },
            self.clock.now_ms(),
        )
        .await?;
        Ok(ResponseReceipt { message_id, quiz: key.to_owned(), sets: checked.facts, events: names, stored })
    }

    /// The Segment events a response becomes.
    fn events(&self, quiz: &QuizDefinition, checked: &model::Checked, r: &NewResponse, message_id: &str) -> Vec<Value> {
        let raw: serde_json::Map<String, Value> = checked
            .answers
            .iter()
            .map(|(q, a)| {
                let v = match a {
                    Answer::Single { option } => json!(option),
                    Answer::Multiple { options } => json!(options),
                    Answer::Text { text } => json!(text),
                    Answer::Rating { rating } => json!(rating),
                };
                (q.clone(), v)
            })
            .collect();
        let f = &checked.facts;
        let (event, properties) = match (quiz.kind, &f.skin_type) {
            (QuizKind::Quiz, Some(skin_type)) => {
                let mut p = json!({"quiz_id": quiz.key, "skin_type": skin_type, "answers": raw});
                if !f.concerns.is_empty() {
                    p["concerns"] = json!(f.concerns);
                }
                ("Skin Quiz Completed", p)
            }
            (QuizKind::Poll, _) => {
                let option = checked.answers.iter().find_map(|(_, a)| match a {
                    Answer::Single { option } => Some(option.clone()),
                    _ => None,
                });
                ("Poll Answer", json!({"poll_id": quiz.key, "option_id": option}))
            }
            // A survey, or a quiz whose answers set no skin type (the quiz event needs one).
            _ => {
                let answers: Vec<Value> = raw.iter().map(|(q, a)| json!({"question_id": q, "answer": a})).collect();
                ("Survey Response", json!({"survey_id": quiz.key, "answers": answers}))
            }
        };
        let mut base = json!({"type": "track", "context": {"library": {"name": SOURCE}}});
        if let Some(u) = &r.respondent.user_id {
            base["userId"] = json!(u);
        }
        if let Some(a) = &r.respondent.anonymous_id {
            base["anonymousId"] = json!(a);
        }
        let mut main = base.clone();
        main["event"] = json!(event);
        main["messageId"] = json!(message_id);
        main["properties"] = properties;
        if let Some(p) = &r.product_id {
            main["properties"]["product_id"] = json!(p);
        }
        let mut out = vec![main];
        if let (Some(reaction), Some(product)) = (&f.reaction, &r.product_id) {
            let severity =
                f.severity.clone().or_else(|| model::SEVERITIES.contains(&reaction.as_str()).then(|| reaction.clone()));
            let mut e = base;
            e["event"] = json!("Reaction Reported");
            e["messageId"] = json!(format!("{message_id}:reaction"));
            e["properties"] = json!({"product_id": product, "severity": severity.as_deref().unwrap_or("mild"),
                "survey_id": quiz.key});
            if severity.is_none() {
                e["properties"]["notes"] = json!("reported in a survey that did not ask the severity");
            }
            out.push(e);
        }
        out
    }

    /// The write key responses without one are ingested under: the oldest named [`SOURCE`],
    /// else a new one.
    async fn source(&self) -> anyhow::Result<String> {
        let keys = self.ingestor.write_keys();
        let existing = keys.list().await?.into_iter().rfind(|k| k.name == SOURCE);
        Ok(match existing {
            Some(k) => k.id,
            None => keys.create(SOURCE).await?.0.id,
        })
    }

    /// Responses, views, the response rate, per-question distributions, and the same per skin
    /// type.
    pub async fn stats(&self, key: &str) -> Result<QuizStats, QuizError> {
        let quiz = self.get(key).await?;
        let responses = store::responses(&self.db, key).await?;
        let impressions = store::impressions(&self.db, key).await?;
        let segmented = quiz.question_setting(SetsField::SkinType).is_some();
        let mut by_type: BTreeMap<String, Vec<&store::StoredResponse>> = BTreeMap::new();
        if segmented {
            for r in &responses {
                by_type.entry(r.skin_type.clone().unwrap_or_else(|| "unknown".into())).or_default().push(r);
            }
        }
        let all: Vec<&store::StoredResponse> = responses.iter().collect();
        Ok(QuizStats {
            quiz: key.to_owned(),
            responses: responses.len() as u64,
            impressions,
            response_rate: (impressions > 0).then(|| responses.len() as f64 / impressions as f64),
            questions: distribution(&quiz, &all),
            segments: by_type
                .into_iter()
                .map(|(skin_type, rs)| SegmentStats {
                    skin_type,
                    responses: rs.len() as u64,
                    questions: distribution(&quiz, &rs),
                })
                .collect(),
        })
    }
}

/// Per question of `quiz`: how many of `responses` answered it, and how.
fn distribution(quiz: &QuizDefinition, responses: &[&store::StoredResponse]) -> Vec<QuestionStats> {
    quiz.questions
        .iter()
        .map(|q| {
            let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
            let mut ratings = [0u64; 5];
            let mut answered = 0;
            for r in responses {
                let Some((_, a)) = r.answers.iter().find(|(id, _)| id == &q.id) else { continue };
                answered += 1;
                match a {
                    Answer::Single { option } => *counts.entry(option.as_str()).or_default() += 1,
                    Answer::Multiple { options } => {
                        for o in options {
                            *counts.entry(o.as_str()).or_default() += 1;
                        }
                    }
                    Answer::Rating { rating } => {
                        if let Some(slot) = usize::try_from(*rating - 1).ok().and_then(|i| ratings.get_mut(i)) {
                            *slot += 1;
                        }
                    }
                    Answer::Text { .. } => {}
                }
            }
            let rated: u64 = ratings.iter().sum();
            let is_rating = q.kind == QuestionType::Rating;
            QuestionStats {
                question: q.id.clone(),
                text: q.text.clone(),
                answered,
                options: q
                    .options
                    .iter()
                    .map(|o| OptionCount {
                        option: o.id.clone(),
                        label: o.label.clone(),
                        count: counts.get(o.id.as_str()).copied().unwrap_or(0),
                    })
                    .collect(),
                ratings: is_rating.then_some(ratings),
                mean_rating: (is_rating && rated > 0).then(|| {
                    ratings.iter().enumerate().map(|(i, n)| (i as f64 + 1.0) * *n as f64).sum::<f64>() / rated as f64
                }),
            }
        })
        .collect()
}
