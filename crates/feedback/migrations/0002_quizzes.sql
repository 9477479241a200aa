-- Quizzes, polls and surveys: the definition as JSON (what `QuizDefinition` reads back).
CREATE TABLE feedback_quizzes (
    key         TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- Responses: the visitor under a keyed pseudonym (never the id itself), the chosen options and
-- ratings as JSON (free text goes to the event log only, where an erasure finds it), the skin
-- type the response set (the segment of the breakdowns). A retried response (same message id)
-- is stored once.
CREATE TABLE feedback_quiz_responses (
    id           TEXT    PRIMARY KEY,
    quiz         TEXT    NOT NULL,
    message_key  TEXT    NOT NULL,
    visitor_key  TEXT    NOT NULL,
    answers      TEXT    NOT NULL,
    skin_type    TEXT,
    created_at   BIGINT  NOT NULL
);
CREATE UNIQUE INDEX feedback_quiz_responses_message ON feedback_quiz_responses (quiz, message_key);

-- Widget views per quiz (the denominator of the response rate).
CREATE TABLE feedback_quiz_impressions (
    quiz   TEXT    PRIMARY KEY,
    views  BIGINT  NOT NULL
);
