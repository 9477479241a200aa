-- Every canonical ingredient a product's declaration declares or may name, once per product.
-- `certain` = 1: an entry resolves to it (names glued together included: "TocopherolLimonene");
-- 0: an entry or a note writes one of its names as a whole word without resolving to it, so the
-- product is treated as containing it (exclusions never pass it). Exclusions and "products
-- containing" read this table; `product_ingredients` keeps one row per declared entry.
CREATE TABLE product_ingredient_ids (
    product_id    TEXT   NOT NULL,
    ingredient_id TEXT   NOT NULL,
    certain       BIGINT NOT NULL,
    PRIMARY KEY (product_id, ingredient_id)
);
CREATE INDEX product_ingredient_ids_ingredient ON product_ingredient_ids (ingredient_id, product_id);

-- What was known before this table existed, until the products are derived again under the new
-- knowledge-base version (on start, in the background).
INSERT INTO product_ingredient_ids (product_id, ingredient_id, certain)
    SELECT DISTINCT product_id, ingredient_id, 1 FROM product_ingredients WHERE ingredient_id IS NOT NULL;
