-- Derived ingredient facts (recomputed when ingredients, category or the knowledge base change).
-- `facts` is the summary JSON returned in listings; `ingredient_entries` the resolved list,
-- returned when one product is read.
ALTER TABLE products ADD COLUMN highlights TEXT;
ALTER TABLE products ADD COLUMN facts TEXT;
ALTER TABLE products ADD COLUMN ingredient_entries TEXT;
ALTER TABLE products ADD COLUMN kb_version TEXT;

-- One narrow row per product with everything search filters on, so a search scans this table
-- and reads full product rows only for the page it returns.
CREATE TABLE product_search (
    product_id            TEXT   PRIMARY KEY,
    status                TEXT   NOT NULL,
    brand                 TEXT   NOT NULL,
    category              TEXT,
    search_text           TEXT   NOT NULL,
    routine_step          TEXT,
    skin_types            TEXT,
    families              TEXT,
    has_ingredients       BIGINT NOT NULL,
    fragrance_free        BIGINT,
    essential_oil_free    BIGINT,
    drying_alcohol_free   BIGINT,
    non_comedogenic       BIGINT,
    pregnancy_caution     BIGINT,
    photosensitizing      BIGINT,
    contact_allergen_free BIGINT,
    vegan                 BIGINT NOT NULL,
    min_price_minor       BIGINT
);
CREATE INDEX product_search_step ON product_search (routine_step, product_id);
CREATE INDEX product_search_brand ON product_search (brand, product_id);

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
