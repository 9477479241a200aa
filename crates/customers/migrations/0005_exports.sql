-- Asynchronous exports (GDPR art. 15 and 20) and their progress. `document` is the export
-- document, sealed under the customer's data key (field `export:<id>`): erasing the customer
-- deletes these rows and destroys the key. Rows are deleted once `expires_at` has passed.
CREATE TABLE customer_exports (
    id           TEXT   PRIMARY KEY,
    customer_id  TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    requested_by TEXT   NOT NULL,
    requested_at BIGINT NOT NULL,
    completed_at BIGINT,
    expires_at   BIGINT NOT NULL,
    document     TEXT,
    error        TEXT
);
CREATE INDEX customer_exports_customer ON customer_exports (customer_id);
CREATE INDEX customer_exports_status ON customer_exports (status, id);
CREATE INDEX customer_exports_expires ON customer_exports (expires_at);
