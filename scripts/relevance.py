#!/usr/bin/env python3
"""NDCG@k of a running Dermis node's product search against graded judgements.

For every judged query it calls ``GET /v1/products?q=<query>&limit=<k>``, maps the returned items'
``external_id`` to the judged grade (0 when not judged), and computes

    DCG@k  = sum over ranks i = 1..k of (2^grade_i - 1) / log2(i + 1)
    IDCG@k = the same over the judged grades sorted best first
    NDCG@k = DCG@k / IDCG@k

It prints per-query NDCG@k and the mean, and can write everything (including the top results with
their grades) as JSON. Python 3 standard library only.

    scripts/relevance.py --base-url http://127.0.0.1:8080 --token "$TOKEN"
    scripts/relevance.py --base-url ... --token ... --json-out new.json --label new
    scripts/relevance.py --compare old.json new.json
    scripts/relevance.py --validate [--catalog product_info.csv.gz]

Exit status: 0 when every query was answered, 1 when some query failed (it then counts as NDCG 0 in
the mean), 2 when the node cannot be reached or the arguments or judgements are unusable.
"""

import argparse
import csv
import gzip
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_JUDGEMENTS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "crates", "catalog", "tests", "relevance", "judgements.json"
)


class Unreachable(Exception):
    """The node cannot be reached at all (not running, wrong port, DNS)."""


class QueryFailed(Exception):
    """The node answered, but not with a usable page of products."""


def die(msg, code=2):
    print(f"relevance: {msg}", file=sys.stderr)
    sys.exit(code)


def load_judgements(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        die(f"cannot read the judgements {path}: {e}")
    except json.JSONDecodeError as e:
        die(f"the judgements {path} are not valid JSON: {e}")
    problems = validate(doc)
    if problems:
        die(f"the judgements {path} are not usable:\n  " + "\n  ".join(problems))
    return doc


def validate(doc):
    """Structural problems of a judgements document (empty when it is usable)."""
    problems = []
    queries = doc.get("queries") if isinstance(doc, dict) else None
    if not isinstance(queries, list) or not queries:
        return ["no `queries` list"]
    ids = set()
    for n, q in enumerate(queries):
        where = f"query #{n + 1}"
        if not isinstance(q, dict):
            problems.append(f"{where} is not an object")
            continue
        qid, text = q.get("id"), q.get("query")
        if not isinstance(qid, str) or not qid:
            problems.append(f"{where} has no `id`")
        elif qid in ids:
            problems.append(f"{where}: duplicate id {qid!r}")
        ids.add(qid)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where} ({qid}) has no `query` text")
        js = q.get("judgements")
        if not isinstance(js, list) or not js:
            problems.append(f"{where} ({qid}) has no judgements")
            continue
        seen = set()
        for j in js:
            ext, grade = (j.get("external_id"), j.get("grade")) if isinstance(j, dict) else (None, None)
            if not isinstance(ext, str) or not ext:
                problems.append(f"{where} ({qid}): a judgement without `external_id`")
            elif ext in seen:
                problems.append(f"{where} ({qid}): {ext} judged twice")
            seen.add(ext)
            if grade not in (1, 2, 3):
                problems.append(f"{where} ({qid}): {ext} has grade {grade!r}; grades are 1, 2 or 3")
    return problems


def dcg(grades):
    return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(grades))


def ndcg(returned_grades, judged_grades, k):
    ideal = dcg(sorted(judged_grades, reverse=True)[:k])
    actual = dcg(returned_grades[:k])
    return (actual / ideal if ideal > 0 else 0.0), actual, ideal


def fetch(base_url, token, query, k, timeout):
    """The products the node returns for `query`, best first, as dicts."""
    url = f"{base_url.rstrip('/')}/v1/products?" + urllib.parse.urlencode({"q": query, "limit": k})
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            p = json.loads(detail)
            detail = p.get("detail") or p.get("title") or detail
        except (json.JSONDecodeError, AttributeError):
            pass
        hint = " (is the bearer token valid for this node?)" if e.code in (401, 403) else ""
        raise QueryFailed(f"HTTP {e.code}{hint}: {str(detail)[:300]}") from None
    except urllib.error.URLError as e:
        raise Unreachable(f"cannot reach Dermis at {base_url}: {e.reason} (is the node running?)") from None
    except (TimeoutError, ConnectionError) as e:
        raise Unreachable(f"cannot reach Dermis at {base_url}: {e} (is the node running?)") from None
    try:
        page = json.loads(body)
    except json.JSONDecodeError:
        raise QueryFailed(f"the answer is not JSON: {body[:200]!r}") from None
    items = page.get("items") if isinstance(page, dict) else page
    if not isinstance(items, list):
        raise QueryFailed("the answer has no `items` list")
    return [i for i in items if isinstance(i, dict)]


def evaluate(args, doc):
    queries = doc["queries"]
    if args.query:
        wanted = set(args.query)
        queries = [q for q in queries if q["id"] in wanted or q["query"] in wanted]
        if not queries:
            die(f"no judged query matches {sorted(wanted)}")
    results, failed = [], 0
    for q in queries:
        grades = {j["external_id"]: j["grade"] for j in q["judgements"]}
        entry = {"id": q["id"], "query": q["query"], "judged": len(grades)}
        try:
            items = fetch(args.base_url, args.token, q["query"], args.k, args.timeout)
        except Unreachable as e:
            die(str(e))
        except QueryFailed as e:
            failed += 1
            entry.update(ndcg=0.0, error=str(e), returned=0, top=[])
            results.append(entry)
            print(f"{q['id']}  {'ERROR':>6}  {q['query']!r}: {e}", file=sys.stderr)
            continue
        items = items[: args.k]
        got = [grades.get(i.get("external_id") or "", 0) for i in items]
        score, actual, ideal = ndcg(got, list(grades.values()), args.k)
        entry.update(
            ndcg=round(score, 4),
            dcg=round(actual, 4),
            idcg=round(ideal, 4),
            returned=len(items),
            relevant_returned=sum(1 for g in got if g > 0),
            top=[
                {"external_id": i.get("external_id"), "grade": g, "name": i.get("name"), "brand": i.get("brand")}
                for i, g in zip(items, got)
            ],
        )
        results.append(entry)
    return results, failed


def print_table(results, k, label, out):
    width = max(len(r["query"]) for r in results) + 2
    title = f"NDCG@{k}" + (f" - {label}" if label else "")
    print(title, file=out)
    print(f"{'id':<4}  {'query':<{width}}  {'ndcg':>6}  {'returned':>8}  {'relevant':>8}", file=out)
    for r in results:
        score = "ERROR" if "error" in r else f"{r['ndcg']:.3f}"
        rel = r.get("relevant_returned", 0)
        print(f"{r['id']:<4}  {r['query']!r:<{width}}  {score:>6}  {r['returned']:>8}  {rel:>8}", file=out)
    mean = sum(r["ndcg"] for r in results) / len(results)
    print(f"{'':<4}  {'mean':<{width}}  {mean:.3f}", file=out)
    return mean


def show_top(results, out):
    for r in results:
        print(f"\n{r['id']} {r['query']!r}  ndcg={r['ndcg']:.3f}", file=out)
        for n, t in enumerate(r.get("top", []), 1):
            print(f"  {n:>2}. [{t['grade']}] {t['external_id']}  {t.get('brand') or ''} | {t.get('name') or ''}", file=out)


def compare(a_path, b_path):
    docs = []
    for p in (a_path, b_path):
        try:
            with open(p, encoding="utf-8") as f:
                docs.append(json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            die(f"cannot read {p}: {e}")
    a, b = ({r["id"]: r for r in d["queries"]} for d in docs)
    la, lb = docs[0].get("label") or a_path, docs[1].get("label") or b_path
    k = docs[0].get("k", 10)
    common = [i for i in a if i in b]
    if not common:
        die("the two result files have no query in common")
    width = max(len(a[i]["query"]) for i in common) + 2
    print(f"NDCG@{k}: A = {la}, B = {lb}")
    print(f"{'id':<4}  {'query':<{width}}  {'A':>6}  {'B':>6}  {'B-A':>6}")
    for i in common:
        x, y = a[i]["ndcg"], b[i]["ndcg"]
        print(f"{i:<4}  {a[i]['query']!r:<{width}}  {x:>6.3f}  {y:>6.3f}  {y - x:>+6.3f}")
    ma = sum(a[i]["ndcg"] for i in common) / len(common)
    mb = sum(b[i]["ndcg"] for i in common) / len(common)
    print(f"{'':<4}  {'mean':<{width}}  {ma:>6.3f}  {mb:>6.3f}  {mb - ma:>+6.3f}")


def validate_cmd(args):
    doc = load_judgements(args.judgements)
    n = sum(len(q["judgements"]) for q in doc["queries"])
    print(f"{args.judgements}: {len(doc['queries'])} queries, {n} judgements, structure ok")
    if not args.catalog:
        return
    try:
        opener = gzip.open if args.catalog.endswith(".gz") else open
        with opener(args.catalog, "rt", encoding="utf-8", newline="") as f:
            known = {row["product_id"] for row in csv.DictReader(f)}
    except (OSError, KeyError) as e:
        die(f"cannot read product ids from {args.catalog}: {e}")
    missing = [(q["id"], j["external_id"]) for q in doc["queries"] for j in q["judgements"] if j["external_id"] not in known]
    if missing:
        die(f"{len(missing)} judged ids are not in {args.catalog}: {missing[:10]}", 1)
    print(f"every judged id is a product_id of {args.catalog}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("DERMIS_URL", "http://127.0.0.1:8080"),
                    help="the node (default $DERMIS_URL or http://127.0.0.1:8080)")
    ap.add_argument("--token", default=os.environ.get("DERMIS_TOKEN"),
                    help="bearer token (default $DERMIS_TOKEN), e.g. from `dermis token --role customer --sub bench`")
    ap.add_argument("--judgements", default=os.path.normpath(DEFAULT_JUDGEMENTS), help="judgements JSON")
    ap.add_argument("-k", type=int, default=10, help="cut-off rank and the `limit` asked for (default 10)")
    ap.add_argument("--query", action="append", help="only this query (id like q05, or its text); repeatable")
    ap.add_argument("--label", help="a name for this run, kept in the JSON (e.g. old, new, a commit)")
    ap.add_argument("--json-out", help="write the per-query results and the mean to this file")
    ap.add_argument("--show", action="store_true", help="also print each query's top results with their grades")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two --json-out files and exit")
    ap.add_argument("--validate", action="store_true", help="check the judgements file (and ids against --catalog) and exit")
    ap.add_argument("--catalog", help="Sephora product_info.csv(.gz) for --validate")
    args = ap.parse_args()

    if args.compare:
        compare(*args.compare)
        return 0
    if args.validate:
        validate_cmd(args)
        return 0
    if not 1 <= args.k <= 100:
        die("-k must be between 1 and 100")
    if not args.token:
        print("relevance: no --token / $DERMIS_TOKEN given; the node will probably answer 401", file=sys.stderr)
    doc = load_judgements(args.judgements)
    results, failed = evaluate(args, doc)
    mean = print_table(results, args.k, args.label, sys.stdout)
    if args.show:
        show_top(results, sys.stdout)
    if args.json_out:
        out = {
            "label": args.label,
            "base_url": args.base_url,
            "k": args.k,
            "judgements": os.path.abspath(args.judgements),
            "mean_ndcg": round(mean, 4),
            "failed_queries": failed,
            "queries": results,
        }
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write("\n")
    if not failed and all(r["returned"] == 0 for r in results):
        print("relevance: the node returned no product for any query; is the catalog imported?", file=sys.stderr)
    if failed:
        print(f"relevance: {failed} of {len(results)} queries failed and count as NDCG 0", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
