-- The propensity of a visitor's variant when it was chosen (the split's share of that variant
-- at that moment: a fixed split's weight, a bandit's allocation then), for off-policy
-- evaluation; NULL where it is not known (assigned before it was recorded, or an SDK's exposure
-- of a bandit that logged none).
ALTER TABLE feedback_assignments ADD COLUMN propensity DOUBLE PRECISION;
ALTER TABLE feedback_units ADD COLUMN propensity DOUBLE PRECISION;

-- A unit's pre-period, the CUPED covariates: what the visitor did in the 28 days before their
-- first exposure (from the event log). `pre_at` is when it was read; NULL when it was not (a
-- unit exposed before this was recorded, or a read that failed): such a unit counts as 0.
ALTER TABLE feedback_units ADD COLUMN pre_at BIGINT;
ALTER TABLE feedback_units ADD COLUMN pre_clicks DOUBLE PRECISION NOT NULL DEFAULT 0.0;
ALTER TABLE feedback_units ADD COLUMN pre_add_to_carts DOUBLE PRECISION NOT NULL DEFAULT 0.0;
ALTER TABLE feedback_units ADD COLUMN pre_conversions DOUBLE PRECISION NOT NULL DEFAULT 0.0;
ALTER TABLE feedback_units ADD COLUMN pre_revenue DOUBLE PRECISION NOT NULL DEFAULT 0.0;
