//! The quiz tables' SQL (one text for SQLite and PostgreSQL).

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};

use super::model::{Answer, QuizDefinition};

/// Inserts a definition; `false` when the key is taken.
pub async fn insert(db: &Db, quiz: &QuizDefinition, now: i64) -> Result<bool, StoreError> {
    let body = serde_json::to_string(quiz).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    let done = sqlx::query(
        "INSERT INTO feedback_quizzes (key, kind, body, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&quiz.key)
    .bind(quiz.kind.as_str())
    .bind(body)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One definition.
pub async fn get(db: &Db, key: &str) -> Result<Option<QuizDefinition>, StoreError> {
    let row =
        sqlx::query("SELECT body FROM feedback_quizzes WHERE key = $1").bind(key).fetch_optional(db.reader()).await?;
    row.map(|r| {
        let body: String = r.try_get("body")?;
        serde_json::from_str(&body).map_err(|e| StoreError::InvalidInput(format!("quiz: {e}")))
    })
    .transpose()
}

/// A response to store.
#[derive(Debug)]
pub struct NewResponse<'a> {
    /// Its id.
    pub id: &'a str,
    /// The quiz.
    pub quiz: &'a str,
    /// The message id its events carry (a retry is stored once).
    pub message_key: &'a str,
    /// The visitor's pseudonym.
    pub visitor_key: &'a str,
    /// The answers (free text left out).
    pub answers: &'a [(String, Answer)],
    /// The skin type it set.
    pub skin_type: Option<&'a str>,
}

/// Stores a response; `false` when its message id was stored before.
pub async fn insert_response(db: &Db, r: &NewResponse<'_>, now: i64) -> Result<bool, StoreError> {
    let answers = serde_json::to_string(r.answers).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    let done = sqlx::query(
        "INSERT INTO feedback_quiz_responses (id, quiz, message_key, visitor_key, answers, skin_type, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (quiz, message_key) DO NOTHING",
    )
    .bind(r.id)
    .bind(r.quiz)
    .bind(r.message_key)
    .bind(r.visitor_key)
    .bind(answers)
    .bind(r.skin_type)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stored response as the statistics read it.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The answers.
    pub answers: Vec<(String, Answer)>,
    /// The skin type it set.
    pub skin_type: Option<String>,
}

/// Every response to a quiz.
pub async fn responses(db: &Db, quiz: &str) -> Result<Vec<StoredResponse>, StoreError> {
    let rows =
        sqlx::query("SELECT answers, skin_type FROM feedback_quiz_responses WHERE quiz = $1 ORDER BY created_at, id")
            .bind(quiz)
            .fetch_all(db.reader())
            .await?;
    rows.iter()
        .map(|r| {
            let answers: String = r.try_get("answers")?;
            Ok(StoredResponse {
                answers: serde_json::from_str(&answers)
                    .map_err(|e| StoreError::InvalidInput(format!("answers: {e}")))?,
                skin_type: r.try_get("skin_type")?,
            })
        })
        .collect()
}

/// Counts one widget view.
pub async fn count_impression(db: &Db, quiz: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feedback_quiz_impressions (quiz, views) VALUES ($1, 1) \
         ON CONFLICT (quiz) DO UPDATE SET views = feedback_quiz_impressions.views + 1",
    )
    .bind(quiz)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The widget views of a quiz.
pub async fn impressions(db: &Db, quiz: &str) -> Result<u64, StoreError> {
    let row = sqlx::query("SELECT views FROM feedback_quiz_impressions WHERE quiz = $1")
        .bind(quiz)
        .fetch_optional(db.reader())
        .await?;
    Ok(row.map(|r| r.try_get::<i64, _>("views")).transpose()?.unwrap_or(0).max(0) as u64)
}
