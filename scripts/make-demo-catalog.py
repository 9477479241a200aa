#!/usr/bin/env python3
"""Builds crates/server/demo/catalog.json, the demo catalog bundled with Dermis, from the Sephora
product_info.csv.gz in ../shared/data (see crates/server/demo/ATTRIBUTION.md).

Keeps a deterministic subset of Skincare products that have an ingredient list: up to 40 per
secondary category, by popularity (loves_count). Review text is never used.
Usage: scripts/make-demo-catalog.py [PATH/product_info.csv.gz]"""
import ast, csv, gzip, json, sys, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared/data/sephora-products-and-skincare-reviews/product_info.csv.gz"
rows = list(csv.DictReader(gzip.open(src, "rt", encoding="utf-8", newline="")))
skincare = [r for r in rows if r["primary_category"] == "Skincare" and r["ingredients"].strip()]
skincare.sort(key=lambda r: (-int(r["loves_count"] or 0), r["product_id"]))
per_cat, out = {}, []
for r in skincare:
    cat = r["secondary_category"] or "Other"
    if per_cat.get(cat, 0) >= 40:
        continue
    per_cat[cat] = per_cat.get(cat, 0) + 1
    try:
        parts = ast.literal_eval(r["ingredients"])
    except (ValueError, SyntaxError):
        parts = [r["ingredients"]]
    category = "/".join(c for c in (r["primary_category"], r["secondary_category"], r["tertiary_category"]) if c)
    variant = {}
    vt, vv = r["variation_type"].lower(), r["variation_value"].strip()
    if vv:
        key = "size" if "size" in vt else "shade" if "color" in vt or "shade" in vt else "scent" if "scent" in vt else "formula" if "formul" in vt else "size"
        variant[key] = vv
    elif r["size"].strip():
        variant["size"] = r["size"].strip()
    try:
        highlights = ast.literal_eval(r["highlights"]) if r["highlights"] else []
    except (ValueError, SyntaxError):
        highlights = []
    out.append({
        "external_id": r["product_id"],
        "name": r["product_name"].strip(),
        "brand": r["brand_name"].strip(),
        "category": category,
        "ingredients": "\n".join(p.strip() for p in parts if p.strip()),
        "highlights": highlights,
        "skus": [{"code": "SEPH-" + r["product_id"], "variant": variant,
                  "price": {"amount_minor": round(float(r["price_usd"]) * 100), "currency": "USD"}}],
    })
out.sort(key=lambda p: p["external_id"])
dest = root / "crates/server/demo/catalog.json"
dest.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(f"{len(out)} products in {len(per_cat)} categories -> {dest}")
