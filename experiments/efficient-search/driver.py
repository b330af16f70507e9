#!/usr/bin/env python3
"""Efficient-search experiment driver (stdlib only; the plot is hand-written SVG).

  driver.py prepare --data ../shared/data/msmarco --out WORK
      WORK/corpus.tsv   the union of the DL19 and DL20 BM25 top-100 passages (unique docids)
      WORK/queries.tsv  the DL19 + DL20 queries of those files
      WORK/qrels.txt    DL19 + DL20 qrels
  driver.py sweep --hyp BIN --work WORK [--quick] [--threads N]
      exhaustive search once (the reference), then the paper's Figure-2 sweep of the three
      parameters (entry points, nCandidates, maxIter) for --algo paper and --algo hyp+, and the
      presets; writes WORK/results.jsonl, WORK/table.md, WORK/figure2.svg.

Quality is measured as overlap of the approximate top-10 / top-1000 with exhaustive search:
the hyperhead is random (see make_hypencoder.c), so nDCG@10 with the DL qrels is reported but
is not a measure of retrieval quality here.
"""
import argparse, json, os, subprocess, sys, time

DASH = 'stroke-dasharray="5,3"'


def prepare(a):
    os.makedirs(a.out, exist_ok=True)
    rl = os.path.join(a.data, "rank_llm_bm25_top100")
    docs, queries = {}, {}
    for name in ("dl19", "dl20"):
        with open(os.path.join(rl, f"retrieve_results_{name}.bm25.top100.json")) as f:
            for q in json.load(f):
                qid = None
                for h in q["hits"]:
                    qid = str(h["qid"])
                    text = " ".join(h["content"].split())
                    docs.setdefault(str(h["docid"]), text)
                if qid is not None:
                    queries[qid] = " ".join(q["query"].split())
    with open(os.path.join(a.out, "corpus.tsv"), "w") as f:
        for d, t in docs.items():
            f.write(f"{d}\t{t}\n")
    with open(os.path.join(a.out, "queries.tsv"), "w") as f:
        for q, t in queries.items():
            f.write(f"{q}\t{t}\n")
    with open(os.path.join(a.out, "qrels.txt"), "w") as out:
        for name in ("qrels.dl19-passage.txt", "qrels.dl20-passage.txt"):
            with open(os.path.join(a.data, name)) as f:
                for line in f:
                    if line.split() and line.split()[0] in queries:
                        out.write(line)
    print(f"prepare: {len(docs)} passages, {len(queries)} queries -> {a.out}", file=sys.stderr)


def read_run(path):
    run = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            run.setdefault(p[0], []).append((int(p[3]), p[2]))
    return {q: [d for _, d in sorted(v)] for q, v in run.items()}


def overlap(run, ref, k):
    tot = 0.0
    for q, docs in ref.items():
        want = set(docs[:k])
        got = set(run.get(q, [])[:k])
        tot += len(want & got) / max(1, len(want))
    return tot / max(1, len(ref))


def ndcg10(hyp, qrels, run):
    out = subprocess.run([hyp, "eval", "-m", "ndcg_cut.10", qrels, run], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[0] == "ndcg_cut_10" and p[1] == "all":
            return float(p[2])
    return float("nan")


def search(a, tag, extra):
    run = os.path.join(a.work, "runs", tag + ".trec")
    summ = os.path.join(a.work, "runs", tag + ".json")
    cmd = [a.hyp, "search", "--model", os.path.join(a.work, "hyp.h5"), "--docs", os.path.join(a.work, "docs.h5"),
           "--queries", a.queries, "--k", "1000", "--out", run, "--summary", summ] + extra
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"driver: {' '.join(cmd)} failed:\n{r.stderr}")
    with open(summ) as f:
        s = json.load(f)
    print(f"  {tag}: {s['docs_scored_per_query']:.0f} scored/query, {s['search_latency_ms']['mean']:.1f} ms/query "
          f"({time.time() - t0:.1f} s)", file=sys.stderr)
    return run, s


def svg_plot(path, panels, title):
    """panels: list of (xlabel, logx, series) with series = list of (name, colour, dash, [(x, y)])."""
    W, H, pw, ph, ml, mt = 1200, 380, 250, 240, 60, 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    import math
    for i, (xlabel, ylabel, logx, series) in enumerate(panels):
        x0, y0 = ml + i * (pw + 45), mt
        xs = [x for _, _, _, pts in series for x, _ in pts]
        ys = [y for _, _, _, pts in series for _, y in pts]
        if not xs:
            continue
        fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
        xmin, xmax = fx(min(xs)), fx(max(xs))
        if xmax == xmin:
            xmax = xmin + 1
        ymin, ymax = 0.0, max(1.0, max(ys)) if ylabel.startswith("overlap") else max(ys) * 1.05
        if ymax == ymin:
            ymax = ymin + 1
        X = lambda v: x0 + (fx(v) - xmin) / (xmax - xmin) * pw
        Y = lambda v: y0 + ph - (v - ymin) / (ymax - ymin) * ph
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        for t in range(6):
            yv = ymin + (ymax - ymin) * t / 5
            out.append(f'<line x1="{x0 - 4}" y1="{Y(yv):.1f}" x2="{x0}" y2="{Y(yv):.1f}" stroke="#444"/>')
            out.append(f'<text x="{x0 - 6}" y="{Y(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>')
        for xv in sorted(set(xs)):
            out.append(f'<line x1="{X(xv):.1f}" y1="{y0 + ph}" x2="{X(xv):.1f}" y2="{y0 + ph + 4}" stroke="#444"/>')
            out.append(f'<text x="{X(xv):.1f}" y="{y0 + ph + 16}" text-anchor="middle" font-size="9">{xv:g}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 34}" text-anchor="middle">{xlabel}</text>')
        out.append(f'<text x="{x0 - 44}" y="{y0 + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 - 44} {y0 + ph / 2})">{ylabel}</text>')
        for name, col, dash, pts in series:
            pts = sorted(pts)
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2" '
                       f'{DASH if dash else ""}/>')
            for x, y in pts:
                out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{col}"/>')
        if i == 0:
            for j, (name, col, dash, _) in enumerate(series):
                ly = y0 + 12 + 14 * j
                out.append(f'<line x1="{x0 + 8}" y1="{ly}" x2="{x0 + 28}" y2="{ly}" stroke="{col}" stroke-width="2" '
                           f'{DASH if dash else ""}/>')
                out.append(f'<text x="{x0 + 32}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def sweep(a):
    os.makedirs(os.path.join(a.work, "runs"), exist_ok=True)
    qrels = os.path.join(a.work, "qrels.txt")
    with open(os.path.join(a.work, "queries.tsv")) as f:
        qs = f.readlines()
    if 0 < a.max_queries < len(qs):   # an even spread over DL19 and DL20
        qs = [qs[int(i * len(qs) / a.max_queries)] for i in range(a.max_queries)]
    a.queries = os.path.join(a.work, "queries.sweep.tsv")
    with open(a.queries, "w") as f:
        f.writelines(qs)
    res = []
    print("sweep: exhaustive reference", file=sys.stderr)
    ex_run, ex = search(a, "exhaustive", ["--batch-queries", "8"])
    ref = read_run(ex_run)
    ex_ms = ex["search_latency_ms"]["mean"]
    base = dict(e=a.base_entry, c=a.base_cand, i=a.base_iter)
    grid = {
        "e": [50, 100, 200, 500, 1000, 2000, 5000],
        "c": [2, 4, 8, 16, 32, 64, 128],
        "i": [1, 2, 3, 4, 6, 8, 12, 16, 20],
    }
    if not a.full:
        grid = {"e": [50, 200, 1000, 4000], "c": [4, 16, 64], "i": [2, 4, 8, 16]}
    if a.quick:
        grid = {"e": [100, 1000], "c": [8, 64], "i": [4, 16]}
    row = lambda tag, algo, p, s, run: dict(tag=tag, algo=algo, **p, scored=s["docs_scored_per_query"],
                                            ms=s["search_latency_ms"]["mean"], p99=s["search_latency_ms"]["p99"],
                                            iters=s.get("mean_iterations", 0), o10=overlap(read_run(run), ref, 10),
                                            o1000=overlap(read_run(run), ref, 1000), ndcg10=ndcg10(a.hyp, qrels, run),
                                            speedup=ex_ms / max(1e-9, s["search_latency_ms"]["mean"]))
    res.append(dict(tag="exhaustive", algo="exhaustive", e=0, c=0, i=0, scored=ex["docs_scored_per_query"], ms=ex_ms,
                    p99=ex["search_latency_ms"]["p99"], iters=0, o10=1.0, o1000=1.0, ndcg10=ndcg10(a.hyp, qrels, ex_run),
                    speedup=1.0))
    for algo in ("paper", "hyp+"):
        for param, values in grid.items():
            for v in values:
                p = dict(base)
                p[param] = v
                tag = f"{algo}_{param}{v}"
                print(f"sweep: {tag}", file=sys.stderr)
                run, s = search(a, tag, ["--graph", os.path.join(a.work, "graph.h5"), "--algo", algo,
                                         "--entry-points", str(p["e"]), "--candidates", str(p["c"]), "--max-iter", str(p["i"])])
                r = row(tag, algo, p, s, run)
                r["sweep"] = param
                res.append(r)
        for preset in ("efficient1", "efficient2"):
            tag = f"{algo}_{preset}"
            print(f"sweep: {tag}", file=sys.stderr)
            run, s = search(a, tag, ["--graph", os.path.join(a.work, "graph.h5"), "--algo", algo, "--preset", preset])
            p = dict(e=s["entry_points"], c=s["candidates"], i=s["max_iter"])
            r = row(tag, algo, p, s, run)
            r["sweep"] = preset
            res.append(r)
    with open(os.path.join(a.work, "results.jsonl"), "w") as f:
        for r in res:
            f.write(json.dumps(r) + "\n")
    n_docs = ex["documents"]
    lines = [f"Corpus: {n_docs} passages (DL19+DL20 BM25 top-100), {ex['queries']} queries, Hypencoder = pretrained "
             f"MiniLM-L6 BERT + random 6-layer hyperhead; graph k=100. Base setting (entry points, nCandidates, maxIter) = "
             f"({base['e']}, {base['c']}, {base['i']}); each sweep varies one. Overlap = |approx top-k ∩ exhaustive top-k| / k. "
             f"nDCG@10 is NOT a quality measure here (random hyperhead). Exhaustive: {ex_ms:.1f} ms/query search latency.",
             "",
             "| run | algo | entry | nCand | maxIter | docs scored/q | % of corpus | iters | overlap@10 | overlap@1000 | nDCG@10 | search ms/q | p99 ms | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res:
        lines.append(f"| {r['tag']} | {r['algo']} | {r['e']} | {r['c']} | {r['i']} | {r['scored']:.0f} | "
                     f"{100 * r['scored'] / n_docs:.1f} | {r['iters']:.1f} | {r['o10']:.3f} | {r['o1000']:.3f} | "
                     f"{r['ndcg10']:.4f} | {r['ms']:.1f} | {r['p99']:.1f} | {r['speedup']:.2f} |")
    with open(os.path.join(a.work, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    col = {"paper": "#1f77b4", "hyp+": "#d62728"}
    panels = []
    for param, label in (("e", "entry points C~"), ("c", "nCandidates"), ("i", "maxIter")):
        series = []
        for algo in ("paper", "hyp+"):
            pts10 = [(r[param], r["o10"]) for r in res if r.get("sweep") == param and r["algo"] == algo]
            pts1k = [(r[param], r["o1000"]) for r in res if r.get("sweep") == param and r["algo"] == algo]
            series.append((f"{algo} overlap@10", col[algo], False, pts10))
            series.append((f"{algo} overlap@1000", col[algo], True, pts1k))
        panels.append((label, "overlap with exhaustive", param != "i", series))
    series = []
    for algo in ("paper", "hyp+"):
        pts = [(r["ms"], r["o1000"]) for r in res if r["algo"] == algo and r.get("sweep") in ("e", "c", "i")]
        series.append((f"{algo} overlap@1000", col[algo], True, pts))
    panels.append(("search latency ms/query (all sweep points)", "overlap@1000", True, series))
    svg_plot(os.path.join(a.work, "figure2.svg"), panels,
             f"Graph search on {n_docs} DL19+DL20 passages: Figure-2 sweep, paper vs hyp+ (base {base['e']}/{base['c']}/{base['i']})")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--hyp", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--quick", action="store_true", help="2 values per parameter")
    s.add_argument("--full", action="store_true", help="the full grid (7-9 values per parameter)")
    s.add_argument("--max-queries", type=int, default=48, help="queries used (0: all DL19+DL20)")
    s.add_argument("--base-entry", type=int, default=500)
    s.add_argument("--base-cand", type=int, default=32)
    s.add_argument("--base-iter", type=int, default=16)
    a = ap.parse_args()
    prepare(a) if a.cmd == "prepare" else sweep(a)


if __name__ == "__main__":
    main()
