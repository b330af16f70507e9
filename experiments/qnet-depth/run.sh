#!/usr/bin/env bash
# experiments/qnet-depth/run.sh: the q-net depth ablation (the paper's depth study) as one
# command. For each depth and seed it trains with identical data, budget, schedule and seed
# (only model.qnet_layers differs), keeps the run's best checkpoint by validation R-Precision,
# searches each test set exhaustively and evaluates it with hyp eval; then it writes
#   DIR/results.md   rows = depth: nDCG@10, RR@10, R@1000 per test set (mean ± std over seeds),
#                    parameters, training queries/s, search latency per query, and paired
#                    significance of each depth against the best (t-test and randomization)
#   DIR/depth.svg    test nDCG@10 against depth (error bars: std over seeds)
#   DIR/curves.svg   validation R-Precision against step for every run
# It is resumable: finished steps are skipped, an interrupted training resumes (--resume auto).
#
#   experiments/qnet-depth/run.sh [--preset demo|cpu-small|paper] [--depths 1,2,4] [--seeds 1] [--steps N]
#                                 [--out DIR] [--dry-run] [--cuda] [--np N]
#   paper preset only:  --init-from BERT.h5 --train TRAIN.jsonl --val CORPUS,QUERIES,QRELS
#                       --test NAME=CORPUS,QUERIES,QRELS [--test ...]
#
# Presets:
#   demo   the embedded synthetic task of `hyp demo` (its tiny config; minutes on 2 cores):
#          checks the whole workflow; depths 1,2,4, one seed, 3000 steps by default.
#   cpu-small  real MS MARCO text on the CPU: the data, MiniLM teacher and labels of
#          experiments/msmarco-minilm (prepared in DIR/data), its Hypencoder config (MiniLM
#          encoder frozen, so every run shares one encoding of the test corpus), validation on
#          DL20, test on DL19; depths 1,2,4, one seed, 1200 steps by default (48.9 min on 2 cores).
#          --prepared DIR reuses the data of an experiments/msmarco-minilm/run.sh --out DIR.
#   paper  configs/hypencoder-{D}.ini (bert-base-uncased via --init-from, the authors' JSONL,
#          validation every 50k steps, best R-Prec within 800k), for GPUs: --cuda, and
#          --np 2 to launch every training under `mpirun -np 2`. Depths 2,4,6,8 by default.
#          --dry-run prints every command it would run.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HYP=${HYP:-$ROOT/bin/hyp}
prepared="" shared_docs="" preset=demo depths="" seeds=1 steps="" out="" dry=0 cuda="" np=1 init_from="" train="" val="" tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --depths) depths=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --cuda) cuda=--cuda; shift ;;
    --np) np=$2; shift 2 ;;
    --init-from) init_from=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --val) val=$2; shift 2 ;;
    --test) tests+=("$2"); shift 2 ;;
    --prepared) prepared=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "qnet-depth: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "qnet-depth: $*" >&2; exit 2; }
num() { [[ "$2" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "$1: expected comma-separated integers, got '$2'"; }
out=${out:-experiments/qnet-depth/out-$preset}
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)

case "$preset" in
  demo)
    depths=${depths:-1,2,4}; steps=${steps:-3000}
    task=$out/task
    if [ ! -s "$task/data/train.jsonl" ]; then   # hyp demo writes the task first; only its files are used
      [ "$dry" = 1 ] && echo "$HYP demo --steps 10 --out $task" || "$HYP" demo --steps 10 --out "$task" >"$out/task.log" 2>&1
    fi
    D=$task/data
    config_for() { echo "$task/tiny.ini"; }
    train_sets=(--set "data.train=$D/train.jsonl" --set "data.vocab=$D/vocab.txt" --set "eval.corpus=$D/corpus.tsv"
                --set "eval.queries=$D/val_queries.tsv" --set "eval.qrels=$D/val_qrels.txt" --set "train.max_steps=$steps"
                --set "eval.every=$((steps / 6 > 0 ? steps / 6 : 1))" --set "eval.select_within=0" --set "train.log_steps=100")
    tests=("synthetic=$D/corpus.tsv,$D/test_queries.tsv,$D/test_qrels.txt")
    ;;
  cpu-small)
    depths=${depths:-1,2,4}; steps=${steps:-1200}   # 48.9 min on 2 cores, measured (2000 steps took 68)
    P=${prepared:-$out/data}
    if [ "$dry" = 1 ]; then echo "experiments/msmarco-minilm/run.sh --prepare-only --out $P"
    else
      echo "qnet-depth: preparing the MS MARCO data, MiniLM teacher and labels in $P" >&2
      HYP=$HYP experiments/msmarco-minilm/run.sh --prepare-only --out "$P" || die "preparing the data failed (see $P/*.log)"
    fi
    M=$ROOT/../shared/data/msmarco
    config_for() { echo "$ROOT/experiments/msmarco-minilm/hypencoder-minilm.ini"; }
    train_sets=(--set "model.init_from=$P/minilm.h5" --set "data.train=$P/train.jsonl" --set "eval.corpus=$P/corpus.tsv"
                --set "eval.queries=$P/val-queries.tsv" --set "eval.qrels=$M/qrels.dl20-passage.txt"
                --set "train.max_steps=$steps" --set "eval.every=$((steps / 8 > 0 ? steps / 8 : 1))")
    tests=("dl19=$P/corpus.tsv,$P/dl19-queries.tsv,$M/qrels.dl19-passage.txt")
    shared_docs=$out   # the frozen MiniLM encodes documents the same way in every run
    ;;
  paper)
    depths=${depths:-2,4,6,8}
    [ -n "$init_from" ] && [ -n "$train" ] && [ -n "$val" ] && [ ${#tests[@]} -gt 0 ] ||
      [ "$dry" = 1 ] || die "the paper preset needs --init-from, --train, --val and at least one --test"
    init_from=${init_from:-BERT_BASE.h5} train=${train:-TRAIN.jsonl} val=${val:-VAL_CORPUS,VAL_QUERIES,VAL_QRELS}
    [ ${#tests[@]} -gt 0 ] || tests=("dl19=CORPUS,DL19_QUERIES,DL19_QRELS" "dl20=CORPUS,DL20_QUERIES,DL20_QRELS"
                                     "dev=CORPUS,DEV_QUERIES,DEV_QRELS")
    IFS=, read -r vc vq vr <<<"$val"
    config_for() { echo "$ROOT/configs/hypencoder-$1.ini"; }
    train_sets=(--set "model.init_from=$init_from" --set "data.train=$train" --set "eval.corpus=$vc"
                --set "eval.queries=$vq" --set "eval.qrels=$vr")
    [ -n "$steps" ] && train_sets+=(--set "train.max_steps=$steps")
    ;;
  *) die "unknown preset '$preset' (demo, cpu-small or paper)" ;;
esac
num --depths "$depths"; num --seeds "$seeds"
IFS=, read -r -a DEPTHS <<<"$depths"
IFS=, read -r -a SEEDS <<<"$seeds"
launch=("$HYP")
[ "$np" -gt 1 ] && launch=(mpirun -np "$np" "$HYP")

# run CMD...: print it (dry run) or run it, stopping the script on failure
run() {
  if [ "$dry" = 1 ]; then printf '%q ' "$@"; echo; return 0; fi
  "$@" || die "failed: $*"
}

declare -A encoded   # corpora encoded in this invocation (the dry run writes no files)
for d in "${DEPTHS[@]}"; do
  cfg=$(config_for "$d")
  [ "$dry" = 1 ] || [ -f "$cfg" ] || die "no config for depth $d ($cfg)"
  for s in "${SEEDS[@]}"; do
    r=$out/runs/d$d-s$s
    mkdir -p "$r"
    if [ ! -f "$r/train.done" ]; then
      if [ "$dry" = 1 ]; then
        run "${launch[@]}" train --config "$cfg" --set "model.qnet_layers=$d" --set "train.seed=$s" "${train_sets[@]}" \
            --out "$r" --resume auto $cuda
      else
        echo "qnet-depth: training depth $d seed $s -> $r"
        "${launch[@]}" train --config "$cfg" --set "model.qnet_layers=$d" --set "train.seed=$s" "${train_sets[@]}" \
            --out "$r" --resume auto $cuda >>"$r/train.log" 2>&1 || die "training depth $d seed $s failed (see $r/train.log)"
        touch "$r/train.done"
      fi
    fi
    for t in "${tests[@]}"; do
      name=${t%%=*}; IFS=, read -r tc tq tr <<<"${t#*=}"
      docs=${shared_docs:-$r}/docs-$(printf '%s' "$tc" | md5sum | cut -c1-8).h5   # one encoding a corpus (DL19 and DL20 share one)
      if [ ! -f "$docs" ] && [ -z "${encoded[$docs]:-}" ]; then
        run "$HYP" encode --model "$r/best.h5" --corpus "$tc" --out "$docs" $cuda
        encoded[$docs]=1
      fi
      [ -f "$r/$name.trec" ] || run "$HYP" search --model "$r/best.h5" --docs "$docs" --queries "$tq" \
                                      --out "$r/$name.trec" --summary "$r/$name.search.json" --tag "d$d-s$s" ${cuda:+--device cuda}
      if [ "$dry" = 1 ]; then run "$HYP" eval -q -m nDCG@10 -m RR@10 -m R@1000 "$tr" "$r/$name.trec"
      elif [ ! -s "$r/$name.eval" ]; then
        "$HYP" eval -q -m nDCG@10 -m RR@10 -m R@1000 "$tr" "$r/$name.trec" >"$r/$name.eval.tmp" && mv "$r/$name.eval.tmp" "$r/$name.eval" ||
          die "evaluation of $r/$name.trec failed"
      fi
    done
  done
done
[ "$dry" = 1 ] && { echo "# then: results.md, depth.svg (hyp plot --table), curves.svg (hyp plot --metric Rprec)"; exit 0; }

# ---------------------------------------------------------------- the table and the plots
python3 - "$out" "$depths" "$seeds" "${tests[@]}" <<'PY' || die "could not write the results table"
import json, math, os, re, subprocess, sys
out, depths, seeds, tests = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3].split(","), sys.argv[4:]
hyp = os.environ.get("HYP", os.path.join(os.getcwd(), "bin", "hyp"))
names = [t.split("=", 1)[0] for t in tests]
qrels = {t.split("=", 1)[0]: t.split("=", 1)[1].split(",")[2] for t in tests}
M = ["nDCG@10", "RR@10", "R@1000"]
def summary(path):
    vals = {}
    for line in open(path):
        f = line.split()
        if len(f) == 3 and f[1] == "all": vals[f[0]] = float(f[2])
    return vals
def ms(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd
rows, table = {}, []
for d in depths:
    row = {"params": None, "qps": [], "lat": {n: [] for n in names}, "m": {(n, k): [] for n in names for k in M}}
    for s in seeds:
        r = f"{out}/runs/d{d}-s{s}"
        log = open(f"{r}/train.log").read()
        p = re.findall(r"model: \w+, (\d+) parameters", log)
        if p: row["params"] = int(p[-1])
        q = [json.loads(l)["qps"] for l in open(f"{r}/metrics.jsonl") if '"qps"' in l]
        if q: row["qps"].append(sum(q) / len(q))
        for n in names:
            v = summary(f"{r}/{n}.eval")
            for k in M: row["m"][(n, k)].append(v.get(k, float("nan")))
            row["lat"][n].append(json.load(open(f"{r}/{n}.search.json"))["latency_ms"]["mean"])
    rows[d] = row
# significance of each depth against the best one (first test set's nDCG@10, first seed's runs)
first = names[0]
best = max(depths, key=lambda d: ms(rows[d]["m"][(first, "nDCG@10")])[0])
sig = {}
for d in depths:
    if d == best: continue
    a, b = f"{out}/runs/d{best}-s{seeds[0]}/{first}.trec", f"{out}/runs/d{d}-s{seeds[0]}/{first}.trec"
    res = subprocess.run([hyp, "eval", "--compare", b, "-m", "nDCG@10", qrels[first], a], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        f = line.split("\t")
        if f and f[0].strip() == "nDCG@10": sig[d] = (float(f[4]), float(f[5]))
with open(f"{out}/results.md", "w") as w:
    w.write(f"# q-net depth ablation ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}: {', '.join(seeds)})\n\n")
    head = "| q-net layers | " + " | ".join(f"{n} {k}" for n in names for k in M) + " | parameters | train q/s | " + \
           " | ".join(f"{n} ms/query" for n in names) + " |\n"
    w.write(head + "|" + "---|" * (head.count("|") - 1) + "\n")
    for d in depths:
        row = rows[d]
        cells = []
        for n in names:
            for k in M:
                m, sd = ms(row["m"][(n, k)])
                mark = ""
                if k == "nDCG@10" and n == first and d in sig:
                    pt, pr = sig[d]
                    mark = " †" if pt < 0.05 and pr < 0.05 else ""
                cells.append(f"{m:.4f} ± {sd:.4f}{mark}" if len(seeds) > 1 else f"{m:.4f}{mark}")
        qps = ms(row["qps"])[0] if row["qps"] else float("nan")
        lats = [f"{ms(row['lat'][n])[0]:.2f}" for n in names]
        w.write(f"| {d}{' (best)' if d == best else ''} | " + " | ".join(cells) +
                f" | {row['params'] or '?'} | {qps:.1f} | " + " | ".join(lats) + " |\n")
    w.write(f"\n† {first} nDCG@10 differs from the best depth ({best}) with p < 0.05 in both the paired t-test and the "
            "randomization test (hyp eval --compare, first seed's runs, two-sided).\n")
    if sig:
        w.write("\n| depth vs best | p (t-test) | p (randomization) |\n|---|---|---|\n")
        for d in sorted(sig): w.write(f"| {d} vs {best} | {sig[d][0]:.4f} | {sig[d][1]:.4f} |\n")
with open(f"{out}/depth.tsv", "w") as w:
    for n in names:
        for d in depths:
            m, sd = ms(rows[d]["m"][(n, "nDCG@10")])
            w.write(f"{n} nDCG@10\t{d}\t{m}\t{sd}\n")
PY
"$HYP" plot --table "$out/depth.tsv" --out "$out/depth.svg" --xlabel "q-net layers" --ylabel "test nDCG@10" \
  --title "q-net depth ablation" >/dev/null || die "could not draw depth.svg"
runs=(); labels=()
for d in "${DEPTHS[@]}"; do for s in "${SEEDS[@]}"; do runs+=("$out/runs/d$d-s$s"); labels+=(--label "depth $d seed $s"); done; done
"$HYP" plot "${runs[@]}" "${labels[@]}" --metric Rprec --title "validation R-Precision" --out "$out/curves.svg" >/dev/null ||
  die "could not draw curves.svg"
echo "qnet-depth: $out/results.md, $out/depth.svg, $out/curves.svg"
cat "$out/results.md"
