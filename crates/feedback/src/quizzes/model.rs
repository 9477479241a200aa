//! A quiz, poll or survey as defined (questions, options, branching, the profile field an
//! option sets) and a response to one, checked against its definition.

use std::collections::{BTreeMap, BTreeSet};

use dermis_core::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The skin types an option may set (the `Skin Quiz Completed` schema's).
pub const SKIN_TYPES: &[&str] = &["dry", "oily", "combination", "normal", "sensitive"];
/// The concerns an option may set (the `Skin Quiz Completed` schema's).
pub const CONCERNS: &[&str] =
    &["acne", "hyperpigmentation", "redness", "dryness", "aging", "dullness", "pores", "sensitivity"];
/// The values a `reaction` option may set: `yes` (severity from a `severity` answer, else
/// `mild`), a severity, or `no`.
pub const REACTIONS: &[&str] = &["yes", "no", "mild", "moderate", "severe"];
/// The severities (the `Reaction Reported` schema's).
pub const SEVERITIES: &[&str] = &["mild", "moderate", "severe"];

/// What is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuizKind {
    /// A skin quiz: its answers set profile facts (`Skin Quiz Completed`).
    Quiz,
    /// One question, one choice (`Poll Answer`).
    Poll,
    /// Questions of any type (`Survey Response`); a post-purchase survey may report reactions.
    Survey,
}

impl QuizKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quiz => "quiz",
            Self::Poll => "poll",
            Self::Survey => "survey",
        }
    }
}

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionType {
    /// One option.
    Single,
    /// Any number of options.
    Multiple,
    /// Free text (at most 2,000 characters).
    Text,
    /// 1 to 5.
    Rating,
}

/// The profile (or report) field an option sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SetsField {
    /// The skin type (one of [`SKIN_TYPES`]).
    SkinType,
    /// A concern (one of [`CONCERNS`]); several options add up.
    Concerns,
    /// An adverse reaction to the product the survey is about (one of [`REACTIONS`]).
    Reaction,
    /// The reaction's severity (one of [`SEVERITIES`]).
    Severity,
}

/// What choosing an option sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sets {
    /// `skin_type`, `concerns`, `reaction` or `severity`.
    pub field: SetsField,
    /// The value.
    pub value: String,
}

/// An option of a choice question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Unique within the question.
    pub id: String,
    /// What the visitor reads.
    pub label: String,
    /// The field choosing it sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets: Option<Sets>,
}

/// A question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Unique within the quiz.
    pub id: String,
    /// What the visitor reads.
    pub text: String,
    /// `single`, `multiple`, `text` or `rating`.
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// The options (choice questions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
    /// Branching (single-choice questions): the question an option leads to, which must come
    /// later; other options lead to the next question.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next: BTreeMap<String, String>,
    /// Whether a visitor who reaches it must answer it.
    #[serde(default)]
    pub required: bool,
}

/// A quiz, poll or survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuizDefinition {
    /// Its key (`[a-z0-9_-]`, 1 to 100 characters), in the paths.
    pub key: String,
    /// `quiz`, `poll` or `survey`.
    pub kind: QuizKind,
    /// The title the widget shows.
    pub title: String,
    /// The questions, in order.
    pub questions: Vec<Question>,
}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(|c| c.is_control() && c != '\n')
}

impl QuizDefinition {
    /// What is wrong with it, by field.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |f: String, m: &str| errors.push(FieldError::new(f, m));
        if !id_ok(&self.key) {
            err("key".into(), "1 to 100 characters of a-z, 0-9, _ and -");
        }
        if !text_ok(&self.title, 200) {
            err("title".into(), "1 to 200 characters");
        }
        if self.questions.is_empty() || self.questions.len() > 50 {
            err("questions".into(), "1 to 50 questions");
        }
        if self.kind == QuizKind::Poll
            && (self.questions.len() != 1 || self.questions.first().is_some_and(|q| q.kind != QuestionType::Single))
        {
            err("questions".into(), "a poll has one single-choice question");
        }
        let mut seen = BTreeSet::new();
        let positions: BTreeMap<&str, usize> =
            self.questions.iter().enumerate().map(|(i, q)| (q.id.as_str(), i)).collect();
        for (i, q) in self.questions.iter().enumerate() {
            let at = |f: &str| format!("questions[{i}].{f}");
            if !id_ok(&q.id) {
                err(at("id"), "1 to 100 characters of a-z, 0-9, _ and -");
            } else if !seen.insert(q.id.as_str()) {
                err(at("id"), "question ids are unique");
            }
            if !text_ok(&q.text, 500) {
                err(at("text"), "1 to 500 characters");
            }
            let choice = matches!(q.kind, QuestionType::Single | QuestionType::Multiple);
            if choice && (q.options.is_empty() || q.options.len() > 50) {
                err(at("options"), "a choice question has 1 to 50 options");
            }
            if !choice && !q.options.is_empty() {
                err(at("options"), "only choice questions have options");
            }
            if q.kind != QuestionType::Single && !q.next.is_empty() {
                err(at("next"), "only single-choice questions branch");
            }
            let mut option_ids = BTreeSet::new();
            for (j, o) in q.options.iter().enumerate() {
                let at = |f: &str| format!("questions[{i}].options[{j}].{f}");
                if !id_ok(&o.id) {
                    err(at("id"), "1 to 100 characters of a-z, 0-9, _ and -");
                } else if !option_ids.insert(o.id.as_str()) {
                    err(at("id"), "option ids are unique within a question");
                }
                if !text_ok(&o.label, 200) {
                    err(at("label"), "1 to 200 characters");
                }
                if let Some(s) = &o.sets {
                    let allowed = match s.field {
                        SetsField::SkinType => SKIN_TYPES,
                        SetsField::Concerns => CONCERNS,
                        SetsField::Reaction => REACTIONS,
                        SetsField::Severity => SEVERITIES,
                    };
                    if !allowed.contains(&s.value.as_str()) {
                        err(at("sets.value"), &format!("one of {}", allowed.join(", ")));
                    }
                    if s.field != SetsField::Concerns && q.kind != QuestionType::Single {
                        err(at("sets.field"), "only a single-choice question sets this field");
                    }
                    if s.field == SetsField::SkinType && self.kind != QuizKind::Quiz {
                        err(at("sets.field"), "only a quiz sets the skin type");
                    }
                    if matches!(s.field, SetsField::Reaction | SetsField::Severity) && self.kind != QuizKind::Survey {
                        err(at("sets.field"), "only a survey reports reactions");
                    }
                }
            }
            for (option, target) in &q.next {
                if !option_ids.contains(option.as_str()) {
                    err(format!("questions[{i}].next.{option}"), "not an option of this question");
                }
                match positions.get(target.as_str()) {
                    Some(&t) if t > i => {}
                    Some(_) => err(format!("questions[{i}].next.{option}"), "branches lead to a later question"),
                    None => err(format!("questions[{i}].next.{option}"), "no such question"),
                }
            }
        }
        errors
    }

    /// The question setting `field`, if any.
    pub fn question_setting(&self, field: SetsField) -> Option<&Question> {
        self.questions.iter().find(|q| q.options.iter().any(|o| o.sets.as_ref().is_some_and(|s| s.field == field)))
    }
}

/// One answer of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// The question's id.
    pub question: String,
    /// The option chosen (single choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// The options chosen (multiple choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// The text (text questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// 1 to 5 (rating questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<i64>,
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Answer {
    /// One option.
    Single {
        /// The option.
        option: String,
    },
    /// Options.
    Multiple {
        /// The options.
        options: Vec<String>,
    },
    /// Free text (not kept in the quiz tables, only in the event).
    Text {
        /// The text.
        #[serde(skip)]
        text: String,
    },
    /// A rating.
    Rating {
        /// 1 to 5.
        rating: i64,
    },
}

/// What a response sets, from the options chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Facts {
    /// The skin type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skin_type: Option<String>,
    /// The concerns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concerns: Vec<String>,
    /// A reaction reported (`yes` or a severity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction: Option<String>,
    /// The reaction's severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// A response checked against its definition: the answers of the questions on the visitor's
/// path (in the definition's order) and what they set.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Question id and answer.
    pub answers: Vec<(String, Answer)>,
    /// What the chosen options set.
    pub facts: Facts,
}

/// Checks `answers` against `quiz`: each answers a known question on the visitor's path (the
/// branching decides it) once, with known options of the right shape; every required question
/// on the path is answered; a rating is 1 to 5. Every problem is named by field.
pub fn check(quiz: &QuizDefinition, answers: &[AnswerBody]) -> Result<Checked, Vec<FieldError>> {
    let mut errors = Vec::new();
    if answers.len() > quiz.questions.len() {
        errors.push(FieldError::new("answers", "more answers than questions"));
        return Err(errors);
    }
    let mut by_question: BTreeMap<&str, (usize, &AnswerBody)> = BTreeMap::new();
    for (i, a) in answers.iter().enumerate() {
        if !quiz.questions.iter().any(|q| q.id == a.question) {
            errors.push(FieldError::new(format!("answers[{i}].question"), format!("no question {:?}", a.question)));
        } else if by_question.insert(a.question.as_str(), (i, a)).is_some() {
            errors.push(FieldError::new(format!("answers[{i}].question"), "answered twice"));
        }
    }
    let mut checked = Vec::new();
    let mut facts = Facts::default();
    let mut on_path = BTreeSet::new();
    let mut next = 0;
    while let Some(q) = quiz.questions.get(next) {
        on_path.insert(q.id.as_str());
        next += 1;
        let Some(&(i, a)) = by_question.get(q.id.as_str()) else {
            if q.required {
                errors.push(FieldError::new("answers", format!("question {:?} is required", q.id)));
            }
            continue;
        };
        let field = |f: &str| format!("answers[{i}].{f}");
        let others = |allowed: &str| {
            [
                ("option", a.option.is_some()),
                ("options", a.options.is_some()),
                ("text", a.text.is_some()),
                ("rating", a.rating.is_some()),
            ]
            .into_iter()
            .filter(|(n, set)| *set && *n != allowed)
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
        };
        let expected = match q.kind {
            QuestionType::Single => "option",
            QuestionType::Multiple => "options",
            QuestionType::Text => "text",
            QuestionType::Rating => "rating",
        };
        for n in others(expected) {
            errors.push(FieldError::new(field(n), format!("question {:?} is answered with `{expected}`", q.id)));
        }
        let option = |id: &str| q.options.iter().find(|o| o.id == id);
        match q.kind {
            QuestionType::Single => match a.option.as_deref() {
                None => errors.push(FieldError::new(field("option"), "an option id is needed")),
                Some(id) => match option(id) {
                    None => errors
                        .push(FieldError::new(field("option"), format!("no option {id:?} in question {:?}", q.id))),
                    Some(o) => {
                        apply(&mut facts, o);
                        if let Some(target) = q.next.get(id) {
                            next = quiz.questions.iter().position(|x| &x.id == target).unwrap_or(next);
                        }
                        checked.push((q.id.clone(), Answer::Single { option: id.to_owned() }));
                    }
                },
            },
            QuestionType::Multiple => match a.options.as_deref() {
                None => errors.push(FieldError::new(field("options"), "a list of option ids is needed")),
                Some(ids) => {
                    let mut chosen = Vec::new();
                    for (j, id) in ids.iter().enumerate() {
                        match option(id) {
                            None => errors.push(FieldError::new(
                                format!("answers[{i}].options[{j}]"),
                                format!("no option {id:?} in question {:?}", q.id),
                            )),
                            Some(_) if chosen.contains(id) => {
                                errors.push(FieldError::new(format!("answers[{i}].options[{j}]"), "chosen twice"))
                            }
                            Some(o) => {
                                apply(&mut facts, o);
                                chosen.push(id.clone());
                            }
                        }
                    }
                    if chosen.is_empty() && q.required {
                        errors.push(FieldError::new(field("options"), format!("question {:?} is required", q.id)));
                    }
                    checked.push((q.id.clone(), Answer::Multiple { options: chosen }));
                }
            },
            QuestionType::Text => match a.text.as_deref() {
                Some(t) if t.chars().count() <= 2000 && !t.contains('\0') => {
                    if t.trim().is_empty() && q.required {
                        errors.push(FieldError::new(field("text"), format!("question {:?} is required", q.id)));
                    }
                    checked.push((q.id.clone(), Answer::Text { text: t.to_owned() }));
                }
                Some(_) => errors.push(FieldError::new(field("text"), "at most 2,000 characters")),
                None => errors.push(FieldError::new(field("text"), "a text is needed")),
            },
            QuestionType::Rating => match a.rating {
                Some(r @ 1..=5) => checked.push((q.id.clone(), Answer::Rating { rating: r })),
                Some(_) => errors.push(FieldError::new(field("rating"), "a rating is 1 to 5")),
                None => errors.push(FieldError::new(field("rating"), "a rating is needed")),
            },
        }
    }
    for (q, &(i, _)) in &by_question {
        if !on_path.contains(q) {
            errors.push(FieldError::new(
                format!("answers[{i}].question"),
                format!("question {q:?} is skipped by the branching of the answers before it"),
            ));
        }
    }
    if errors.is_empty() { Ok(Checked { answers: checked, facts }) } else { Err(errors) }
}

fn apply(facts: &mut Facts, o: &Choice) {
    let Some(s) = &o.sets else { return };
    match s.field {
        SetsField::SkinType => facts.skin_type = Some(s.value.clone()),
        SetsField::Concerns => {
            if !facts.concerns.contains(&s.value) {
                facts.concerns.push(s.value.clone());
            }
        }
        SetsField::Reaction => facts.reaction = (s.value != "no").then(|| s.value.clone()),
        SetsField::Severity => facts.severity = Some(s.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quiz() -> QuizDefinition {
        serde_json::from_value(json!({"key": "skin", "kind": "quiz", "title": "Your skin", "questions": [
            {"id": "type", "text": "Your skin?", "type": "single", "required": true, "next": {"oily": "shine"},
             "options": [{"id": "dry", "label": "Dry", "sets": {"field": "skin_type", "value": "dry"}},
                         {"id": "oily", "label": "Oily", "sets": {"field": "skin_type", "value": "oily"}}]},
            {"id": "tight", "text": "Tight after washing?", "type": "rating"},
            {"id": "shine", "text": "Concerns?", "type": "multiple",
             "options": [{"id": "acne", "label": "Acne", "sets": {"field": "concerns", "value": "acne"}},
                         {"id": "pores", "label": "Pores", "sets": {"field": "concerns", "value": "pores"}}]}
        ]}))
        .unwrap()
    }

    fn answers(v: serde_json::Value) -> Vec<AnswerBody> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn branching_skips_questions_and_options_set_facts() {
        let q = quiz();
        assert!(q.problems().is_empty(), "{:?}", q.problems());
        let c = check(
            &q,
            &answers(json!([{"question": "type", "option": "oily"},
            {"question": "shine", "options": ["acne", "pores"]}])),
        )
        .unwrap();
        assert_eq!(c.facts.skin_type.as_deref(), Some("oily"));
        assert_eq!(c.facts.concerns, ["acne", "pores"]);
        let skipped =
            check(&q, &answers(json!([{"question": "type", "option": "oily"}, {"question": "tight", "rating": 3}])));
        assert_eq!(skipped.unwrap_err()[0].field, "answers[1].question");
    }

    #[test]
    fn bad_answers_are_named() {
        let q = quiz();
        let e = check(&q, &answers(json!([{"question": "type", "option": "greasy"}]))).unwrap_err();
        assert_eq!(e[0].field, "answers[0].option");
        let e = check(&q, &answers(json!([{"question": "type", "option": "dry"}, {"question": "tight", "rating": 6}])))
            .unwrap_err();
        assert_eq!(e[0].field, "answers[1].rating");
        let e = check(&q, &answers(json!([{"question": "nope", "text": "x"}]))).unwrap_err();
        assert!(e.iter().any(|e| e.field == "answers[0].question"));
        assert!(e.iter().any(|e| e.field == "answers" && e.message.contains("\"type\"")), "{e:?}");
    }

    #[test]
    fn definitions_are_checked() {
        let mut q = quiz();
        q.questions[2].next.insert("acne".into(), "type".into());
        q.questions[0].next.insert("dry".into(), "type".into());
        q.questions[0].options[0].sets = Some(Sets { field: SetsField::SkinType, value: "greasy".into() });
        let fields: Vec<String> = q.problems().into_iter().map(|e| e.field).collect();
        assert!(fields.contains(&"questions[2].next".to_owned()), "{fields:?}");
        assert!(fields.contains(&"questions[0].next.dry".to_owned()), "{fields:?}");
        assert!(fields.contains(&"questions[0].options[0].sets.value".to_owned()), "{fields:?}");
    }
}
