-- Derived ingredient facts (recomputed when ingredients, category or the knowledge base change)
-- and the columns search filters on.
ALTER TABLE products ADD COLUMN highlights TEXT;
ALTER TABLE products ADD COLUMN search_text TEXT;
ALTER TABLE products ADD COLUMN facts TEXT;
ALTER TABLE products ADD COLUMN kb_version TEXT;
ALTER TABLE products ADD COLUMN routine_step TEXT;
ALTER TABLE products ADD COLUMN skin_types TEXT;
ALTER TABLE products ADD COLUMN has_ingredients BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN fragrance_free BIGINT;
ALTER TABLE products ADD COLUMN essential_oil_free BIGINT;
ALTER TABLE products ADD COLUMN drying_alcohol_free BIGINT;
ALTER TABLE products ADD COLUMN non_comedogenic BIGINT;
ALTER TABLE products ADD COLUMN pregnancy_caution BIGINT;
ALTER TABLE products ADD COLUMN photosensitizing BIGINT;
ALTER TABLE products ADD COLUMN contact_allergen_free BIGINT;
ALTER TABLE products ADD COLUMN vegan BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN min_price_minor BIGINT;
CREATE INDEX products_routine_step ON products (routine_step, id);

-- One row per declared ingredient, in label order; ingredient_id is NULL when unknown.
CREATE TABLE product_ingredients (
    product_id    TEXT   NOT NULL,
    position      BIGINT NOT NULL,
    ingredient_id TEXT,
    name_key      TEXT   NOT NULL,
    may_contain   BIGINT NOT NULL,
    PRIMARY KEY (product_id, position)
);
CREATE INDEX product_ingredients_ingredient ON product_ingredients (ingredient_id, product_id);
CREATE INDEX product_ingredients_name_key ON product_ingredients (name_key, product_id);

-- Concerns a product's actives address, with the strongest evidence among them.
CREATE TABLE product_concerns (
    product_id TEXT NOT NULL,
    concern    TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    PRIMARY KEY (product_id, concern)
);
CREATE INDEX product_concerns_concern ON product_concerns (concern, product_id);
