-- The pseudonym key belongs to the event stream now (events' `pseudonym_keys`): hand over the
-- key a deployment already has, so every customer keeps the pseudonym it had.
INSERT INTO pseudonym_keys (name, secret) SELECT name, secret FROM feature_keys;
DROP TABLE feature_keys;
