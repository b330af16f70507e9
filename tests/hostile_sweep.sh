#!/usr/bin/env bash
# hostile_sweep.sh: every `hyp` command against hostile inputs, bad flags and outputs it
# must refuse (issue 12). Not part of `make test` (a few minutes); run it by hand:
#
#   tests/hostile_sweep.sh [HYP_BINARY]        (default bin/hyp; bin-san/hyp for sanitizers)
#
# It builds a small model and data in a temporary directory (the imported test fixture
# and `hyp demo --steps 5`), then runs each case under a timeout and a memory limit and
# classifies its outcome:
#   ok         clean error (exit 1 or 2, no sanitizer report) or success
#   crash      killed by a signal (exit >= 128) or a sanitizer report on stderr
#   hang       still running at the timeout
#   data-loss  an input file changed or vanished (whatever the exit status)
# It prints a count per class and every case that is not ok, and, as notes, ok cases that
# deserve a look: internal assertions ("hyp: file.c:N:" with exit 2), bad input accepted
# with exit 0, and failures that left output files behind.
# Environment: SWEEP_TIMEOUT (seconds per case, default 20), SWEEP_MEM_KB (virtual memory
# limit, default 4000000; for sanitizer builds a quarter of it caps each allocation), SWEEP_KEEP=1 keeps the work
# directory, SWEEP_FILTER=REGEX runs only matching case names, SWEEP_VERBOSE=1 prints
# every case.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HYP=$(realpath "${1:-$ROOT/bin/hyp}")
[ -x "$HYP" ] || { echo "hostile_sweep: $HYP is not an executable (make first)" >&2; exit 2; }
T=${SWEEP_TIMEOUT:-20}
MEM=${SWEEP_MEM_KB:-4000000}
# Sanitizer builds reserve terabytes of address space, so no ulimit -v there: allocations
# above the limit return NULL instead (the readers then fail as out of memory).
case "$HYP" in *san*)
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:allocator_may_return_null=1:max_allocation_size_mb=$((MEM / 4096))"
  MEM=unlimited ;;
esac
FILTER=${SWEEP_FILTER:-}
W=$(mktemp -d /tmp/hyp_sweep_XXXXXX)
I=$W/in        # inputs (compared with $P after every case)
P=$W/pristine  # their pristine copy
O=$W/out       # outputs (emptied before every case)
L=$W/logs
mkdir -p "$I" "$O" "$L" "$W/run"
cleanup() { [ "${SWEEP_KEEP:-0}" = 1 ] && echo "work directory kept: $W" || { chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"; }; }
trap cleanup EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# ---------------------------------------------------------------- a small model and data
FX=$ROOT/tests/fixtures/hypencoder_import
setup_fail() { echo "hostile_sweep: setup failed: $*" >&2; exit 2; }
cp -r "$FX" "$I/imp" && cp "$FX/passages.tsv" "$FX/queries.tsv" "$FX/vocab.txt" "$I/" || setup_fail "copy fixture"
(cd "$I" && "$HYP" import --from imp --bert-config imp/bert_config.json --out m.h5 -q &&
  "$HYP" encode --model m.h5 --corpus passages.tsv --out docs.h5 &&
  "$HYP" index --docs docs.h5 --neighbors 1 --out g.h5 &&
  "$HYP" search --model m.h5 --docs docs.h5 --queries queries.tsv --k 2 --out run.trec &&
  "$HYP" export --model m.h5 --out m.safetensors --config-out m.config.json &&
  OMP_NUM_THREADS=1 "$HYP" demo --steps 5 --out demo) >"$L/setup.log" 2>&1 || setup_fail "see $L/setup.log: $(tail -3 "$L/setup.log")"
awk '{print $1, 0, $3, ($4 == 1 ? 1 : 0)}' "$I/run.trec" >"$I/qrels.txt"
D=$I/demo/data
cp "$I/demo/hypencoder/best.h5" "$I/hyp.h5"
cp "$I/demo/tiny.ini" "$I/tiny.ini"
rm -rf "$I/demo/hypencoder" "$I/demo/biencoder"
(cd "$I" && "$HYP" encode --model hyp.h5 --corpus "$D/corpus.tsv" --out hyp-docs.h5) >>"$L/setup.log" 2>&1 || setup_fail "encode hyp.h5"
(cd "$I" && "$HYP" pretokenize --vocab "$D/vocab.txt" --in "$D/train.jsonl" --out shards --quiet) >>"$L/setup.log" 2>&1 ||
  setup_fail "pretokenize"

# ---------------------------------------------------------------- hostile files
H=$I/hostile
mkdir -p "$H"
cd "$H" || exit 2
: >empty
head -c 4096 "$HYP" >binary                          # ELF bytes: NULs and every byte value
head -c 2048 /dev/zero >nul
python3 - "$H" "$I" <<'PY' || setup_fail "python3 writing hostile files"
import json, os, struct, sys
h, i = sys.argv[1], sys.argv[2]
def w(name, data):
    with open(os.path.join(h, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
big = "a" * (8 << 20)
w("longline", big)                                                   # 8 MB, no newline
# TSV corpus / queries
w("notab.tsv", "just some text\nmore text\n")
w("badutf8.tsv", b"d1\t\xff\xfe\xc0\xaf text\nd2\tok\n")
w("crlf.tsv", "d1\tone\r\nd2\ttwo\r\n")
w("dupid.tsv", "d1\tone\nd1\ttwo\n")
w("emptyid.tsv", "\ttext\nd2\t\n")
w("manycols.tsv", "d1\ta\tb\tc\n")
w("nul.tsv", b"d1\tab\x00cd\n")
w("longline.tsv", "d1\t" + big + "\n")
w("longid.tsv", "d" * (1 << 20) + "\ttext\n")
w("manyrows.tsv", "".join("d%d\tw\n" % k for k in range(200000)))
# JSONL corpus / queries
w("trunc.jsonl", '{"id": "a", "text": "x')
w("wrongtype.jsonl", '{"id": 5, "text": ["x"]}\n')
w("notobj.jsonl", "[1, 2]\n")
w("deep.jsonl", "[" * 200000 + "\n")
w("noid.jsonl", '{"text": "x"}\n')
w("hugestr.jsonl", '{"id": "a", "text": "' + big + '"}\n')
# training JSONL
lines = open(os.path.join(i, "demo/data/train.jsonl")).read().splitlines()
w("train-trunc.jsonl", "\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
w("train-noitems.jsonl", '{"query": {"id": "q", "content": "x"}, "items": []}\n' * 50)
w("train-badscore.jsonl", '{"query": {"id": "q", "content": "x"}, "items": [{"id": "a", "content": "y", "score": "high"}]}\n')
w("train-deep.jsonl", '{"query": ' + "[" * 200000 + "\n")
w("train-nan.jsonl", '{"query": {"id": "q", "content": "x"}, "items": [{"id": "a", "content": "y", "score": NaN}]}\n')
w("train-huge-ids.jsonl", '{"query": {"id": "q", "content": "x", "tokenized_content": [99999999999]}, "items": [{"id": "a", "content": "y", "score": 1}]}\n')
# qrels / runs
w("qrels-cols", "q 0 d\n")
w("qrels-nonnum", "q 0 d x\n")
w("qrels-huge", "q 0 d 99999999999999999999\n")
w("qrels-junk", "q 0 d 1x\n")
w("run-cols", "q Q0 d 1\n")
w("run-nan", "q Q0 d 1 nan t\n")
w("run-inf", "q Q0 d 1 1e999 t\n")
w("run-rankjunk", "q Q0 d 1x 0.5 t\n")
w("run-longid", "q Q0 " + "d" * (1 << 20) + " 1 0.5 t\n")
# vocab
w("vocab-nospecial.txt", "a\nb\nc\n")
w("vocab-dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\na\n")
w("vocab-blank.txt", "\n\n\n")
w("vocab-huge.txt", open(os.path.join(i, "vocab.txt")).read() + "".join("tok%d\n" % k for k in range(300000)))
# config.json / INI
w("bad.json", "{not json")
w("types.json", '{"hidden_size": "big", "num_attention_heads": [1]}')
w("huge.json", '{"architectures": ["BertModel"], "hidden_size": 1000000000000, "num_hidden_layers": 1, '
  '"num_attention_heads": 1, "intermediate_size": 4, "vocab_size": 10, "max_position_embeddings": 8}')
w("neg.json", '{"architectures": ["BertModel"], "hidden_size": -8, "num_hidden_layers": -1, '
  '"num_attention_heads": 0, "intermediate_size": 4, "vocab_size": 10, "max_position_embeddings": 8}')
w("bad.ini", "[model]\nkind = hypencoder\n[train\nlr = 1\n")
w("junk.ini", "[train]\nmax_steps = 1e3\n")
w("longval.ini", "[data]\ntrain = " + "x" * 100000 + "\n")
# safetensors
def st(header, data=b""):
    hb = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(hb)) + hb + data
w("st-hdrlen", struct.pack("<Q", (1 << 64) - 1) + b"{}")
w("st-badjson", struct.pack("<Q", 10) + b"{not json}")
w("st-past-end", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}, b"\0" * 16))
w("st-dtype", st({"a": {"dtype": "Q8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4))
w("st-shape", st({"a": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}}, b"\0" * 16))
w("st-negoff", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16))
w("st-overlap", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, b"\0" * 24))
w("st-bigshape", st({"a": {"dtype": "F32", "shape": [1 << 31, 1 << 31, 1 << 31], "data_offsets": [0, 16]}}, b"\0" * 16))
w("st-notobj", st(b"[1, 2, 3]"))
m = open(os.path.join(i, "m.safetensors"), "rb").read()
w("st-trunc", m[: len(m) // 2])
w("st-trunc-hdr", m[:20])
# pytorch_model.bin
b = open(os.path.join(i, "imp/pytorch_model.bin"), "rb").read()
w("pt-trunc.bin", b[: len(b) // 2])
w("pt-zip-only.bin", b"PK\x03\x04" + b"\0" * 100)
# HDF5
for name in ("m.h5", "docs.h5", "g.h5"):
    d = open(os.path.join(i, name), "rb").read()
    w("trunc-" + name, d[:2048])
    f = bytearray(d)
    for k in range(len(f) // 3, len(f) // 3 + 512):
        f[k] = 0xFF
    w("flip-" + name, bytes(f))
w("text.h5", "not an hdf5 file\n")
PY
# Directories for --from (import) with one hostile member each.
for v in st-hdrlen st-badjson st-past-end st-dtype st-shape st-trunc; do
  mkdir -p "dir-$v" && cp "$v" "dir-$v/model.safetensors" && cp "$I/m.config.json" "dir-$v/config.json" && cp "$I/vocab.txt" "dir-$v/"
done
mkdir -p dir-badconfig && cp "$I/m.safetensors" dir-badconfig/model.safetensors && cp bad.json dir-badconfig/config.json
mkdir -p dir-empty
cd "$W/run" || exit 2

rm -rf "$P" && cp -a "$I" "$P"

# ---------------------------------------------------------------- the runner
N=0
declare -A COUNT=([ok]=0 [crash]=0 [hang]=0 [data-loss]=0)
BAD=()
NOTES=()
# case EXPECT NAME [STDIN=FILE] -- ARGS...   EXPECT: fail (exit 0 is wrong) or any
case_() {
  local expect=$1 name=$2 stdin=/dev/null
  shift 2
  if [[ ${1:-} == STDIN=* ]]; then stdin=${1#STDIN=}; shift; fi
  [[ ${1:-} == -- ]] && shift
  if [ -n "$FILTER" ] && ! [[ $name =~ $FILTER ]]; then return; fi
  N=$((N + 1))
  rm -rf "${O:?}"/* "${O:?}"/.[!.]* 2>/dev/null
  local log=$L/$N
  printf '%s\n' "$name" "$*" >"$log.case"
  (ulimit -v "$MEM" 2>/dev/null; exec timeout -k 5 "$T" "$HYP" "$@") <"$stdin" >"$log.out" 2>"$log.err"
  local rc=$? cls=ok
  local first
  first=$(grep -v '^\s*$' "$log.err" | grep -v '^encode:\|^search:\|^pretokenize:\|^step \|^eval step\|^hyp train: \(resumed\|starting\)\|WARNING: AddressSanitizer failed to allocate' | head -1 | cut -c1-160)
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then cls=hang
  elif [ $rc -ge 128 ]; then cls=crash
  elif grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|UndefinedBehaviorSanitizer|ThreadSanitizer' "$log.err"; then
    # (not "WARNING: AddressSanitizer failed to allocate": the memory cap of this sweep)
    cls=crash; first=$(grep -m1 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:|Sanitizer' "$log.err" | cut -c1-160)
  fi
  local changed
  changed=$(diff -rq "$P" "$I" 2>&1 | grep -v "^Only in $I" | head -3)
  if [ -n "$changed" ]; then
    cls=data-loss; first="$changed"
    rm -rf "$I" && cp -a "$P" "$I"
  else
    # new files a case wrote among the inputs (e.g. OUT.tmp of a refused out==in) go too
    diff -rq "$P" "$I" 2>/dev/null | grep -q . && { rm -rf "$I" && cp -a "$P" "$I"; }
  fi
  COUNT[$cls]=$((COUNT[$cls] + 1))
  local line
  line=$(printf '%-9s rc=%-3s %-44s %s' "$cls" "$rc" "$name" "${first:-}")
  [ "${SWEEP_VERBOSE:-0}" = 1 ] && echo "$line"
  if [ $cls != ok ]; then BAD+=("$line"); return; fi
  if [ $rc -eq 2 ] && grep -qE '^hyp: [A-Za-z0-9_/]+\.(c|cu|h):[0-9]+:' "$log.err"; then
    NOTES+=("$(printf 'internal  rc=%-3s %-44s %s' "$rc" "$name" "${first:-}")")
  elif [ $rc -eq 0 ] && [ "$expect" = fail ]; then
    NOTES+=("$(printf 'accepted  rc=%-3s %-44s %s' "$rc" "$name" "$(head -c 100 "$log.out" | tr '\n' ' ')")")
  elif [ $rc -ne 0 ] && [ -n "$(ls -A "$O" 2>/dev/null)" ]; then
    NOTES+=("$(printf 'leftover  rc=%-3s %-44s %s' "$rc" "$name" "$(ls -A "$O" | head -3 | tr '\n' ' ')")")
  fi
}

# The kinds of input and their hostile variants (missing, empty, endless, binary, malformed).
GENERIC=("$H/missing" "$H/empty" /dev/zero /dev/urandom "$H/binary" "$H/nul" "$H/longline" "$I")
TSV=("$H/notab.tsv" "$H/badutf8.tsv" "$H/crlf.tsv" "$H/dupid.tsv" "$H/emptyid.tsv" "$H/manycols.tsv" "$H/nul.tsv"
     "$H/longline.tsv" "$H/longid.tsv" "$H/trunc.jsonl" "$H/wrongtype.jsonl" "$H/notobj.jsonl" "$H/deep.jsonl"
     "$H/noid.jsonl" "$H/hugestr.jsonl")
H5=("$H/trunc-m.h5" "$H/flip-m.h5" "$H/trunc-docs.h5" "$H/flip-docs.h5" "$H/trunc-g.h5" "$H/flip-g.h5" "$H/text.h5"
    "$I/m.h5" "$I/docs.h5" "$I/g.h5" "$I/hyp.h5")
VOCAB=("$H/vocab-nospecial.txt" "$H/vocab-dup.txt" "$H/vocab-blank.txt" "$H/vocab-huge.txt")
TRAIN=("$H/train-trunc.jsonl" "$H/train-noitems.jsonl" "$H/train-badscore.jsonl" "$H/train-deep.jsonl"
       "$H/train-nan.jsonl" "$H/train-huge-ids.jsonl" "$H/notobj.jsonl" "$H/trunc.jsonl")
QRELS=("$H/qrels-cols" "$H/qrels-nonnum" "$H/qrels-huge" "$H/qrels-junk" "$I/run.trec")
RUNS=("$H/run-cols" "$H/run-nan" "$H/run-inf" "$H/run-rankjunk" "$H/run-longid" "$I/qrels.txt")
ST=("$H/st-hdrlen" "$H/st-badjson" "$H/st-past-end" "$H/st-dtype" "$H/st-shape" "$H/st-negoff" "$H/st-overlap"
    "$H/st-bigshape" "$H/st-notobj" "$H/st-trunc" "$H/st-trunc-hdr" "$H/pt-trunc.bin" "$H/pt-zip-only.bin")
NONE=()
JSONCFG=("$H/bad.json" "$H/types.json" "$H/huge.json" "$H/neg.json")
b() { basename "$1"; }

# Each input flag of a command gets every variant of its kind; the other arguments stay valid.
# sweep_input CMD FLAG KIND_ARRAY_NAME -- ARGS (the command first) with @@ where the hostile path goes
sweep_input() {
  local cmd=$1 flag=$2 kind=$3
  shift 3
  [[ $1 == -- ]] && shift
  local -n arr=$kind
  local v
  for v in "${GENERIC[@]}" "${arr[@]}"; do
    local args=() a
    for a in "$@"; do args+=("${a//@@/$v}"); done
    # missing, endless, binary, NUL-filled and directory inputs are never valid
    local e=any
    case "$v" in "$H/missing" | /dev/zero | /dev/urandom | "$H/binary" | "$H/nul" | "$I") e=fail ;; esac
    case_ $e "$cmd $flag $(b "$v")" -- "${args[@]}"
  done
}

M=$I/m.h5 DOCS=$I/docs.h5 G=$I/g.h5 Q=$I/queries.tsv C=$I/passages.tsv V=$I/vocab.txt
echo "hostile_sweep: $HYP, timeout ${T}s, memory limit ${MEM} KB${ASAN_OPTIONS:+ (ASAN_OPTIONS=$ASAN_OPTIONS)}, work $W" >&2

# ---- inputs
sweep_input encode --model H5 -- encode --model @@ --corpus "$C" --out "$O/d.h5"
sweep_input encode --corpus TSV -- encode --model "$M" --corpus @@ --out "$O/d.h5"
sweep_input encode --vocab VOCAB -- encode --model "$M" --corpus "$C" --vocab @@ --out "$O/d.h5"
sweep_input index --docs H5 -- index --docs @@ --neighbors 1 --out "$O/g.h5"
sweep_input index --docs-approx H5 -- index --docs @@ --neighbors 1 --approx --centroids 1 --out "$O/g.h5"
sweep_input search --model H5 -- search --model @@ --docs "$DOCS" --queries "$Q" --out "$O/r"
sweep_input search --docs H5 -- search --model "$M" --docs @@ --queries "$Q" --out "$O/r"
sweep_input search --docs-streaming H5 -- search --model "$M" --docs @@ --queries "$Q" --streaming --out "$O/r"
sweep_input search --queries TSV -- search --model "$M" --docs "$DOCS" --queries @@ --out "$O/r"
sweep_input search --graph H5 -- search --model "$M" --docs "$DOCS" --queries "$Q" --graph @@ --out "$O/r"
sweep_input score --model H5 -- score --model @@ --queries "$Q" --corpus "$C"
sweep_input score --queries TSV -- score --model "$M" --queries @@ --corpus "$C"
sweep_input score --corpus TSV -- score --model "$M" --queries "$Q" --corpus @@
sweep_input score --vocab VOCAB -- score --model "$M" --queries "$Q" --corpus "$C" --vocab @@
sweep_input export --model H5 -- export --model @@ --out "$O/x.safetensors" --config-out "$O/c.json"
sweep_input import --from ST -- import --from @@ --bert-config "$I/imp/bert_config.json" --out "$O/m.h5" -q
sweep_input import --config JSONCFG -- import --from "$I/m.safetensors" --config @@ --out "$O/m.h5" -q
sweep_input import --vocab VOCAB -- import --from "$I/m.safetensors" --config "$I/m.config.json" --vocab @@ --out "$O/m.h5" -q
for d in "$H"/dir-*; do case_ any "import --from $(b "$d")" -- import --from "$d" --out "$O/m.h5" -q; done
sweep_input tokenize --vocab VOCAB -- tokenize --vocab @@
for v in "${GENERIC[@]:1}" "${TSV[@]}"; do   # not /dev/urandom: a filter on endless lines runs forever
  [ -d "$v" ] || [ "$v" = /dev/urandom ] && continue
  case_ any "tokenize stdin $(b "$v")" STDIN="$v" -- tokenize --vocab "$V"
done
sweep_input pretokenize --vocab VOCAB -- pretokenize --vocab @@ --in "$D/train.jsonl" --out "$O/shards" --quiet
sweep_input pretokenize --in TRAIN -- pretokenize --vocab "$D/vocab.txt" --in @@ --out "$O/shards" --quiet
sweep_input eval qrels QRELS -- eval @@ "$I/run.trec"
sweep_input eval run RUNS -- eval "$I/qrels.txt" @@
sweep_input eval --compare RUNS -- eval --compare @@ "$I/qrels.txt" "$I/run.trec"
TR=(train --config "$I/tiny.ini" --set "data.train=$I/shards" --set "data.vocab=$D/vocab.txt" --set train.max_steps=2
    --set eval.every=0 --quiet)
sweep_input train --config NONE -- train --config @@ --out "$O/t"
for v in "$H/bad.ini" "$H/junk.ini" "$H/longval.ini"; do case_ any "train --config $(b "$v")" -- train --config "$v" --out "$O/t"; done
sweep_input train data.train TRAIN -- "${TR[@]}" --set data.train=@@ --out "$O/t"
sweep_input train data.vocab VOCAB -- "${TR[@]}" --set data.vocab=@@ --out "$O/t"
sweep_input train eval.corpus TSV -- "${TR[@]}" --set eval.every=1 --set eval.corpus=@@ --set "eval.queries=$D/val_queries.tsv" --set "eval.qrels=$D/val_qrels.txt" --out "$O/t"
sweep_input train eval.qrels QRELS -- "${TR[@]}" --set eval.every=1 --set "eval.corpus=$D/corpus.tsv" --set "eval.queries=$D/val_queries.tsv" --set eval.qrels=@@ --out "$O/t"
sweep_input train --resume H5 -- "${TR[@]}" --resume @@ --out "$O/t"

# ---- bad flags: unknown, missing values, numbers that are not numbers
SEARCH=(search --model "$M" --docs "$DOCS" --queries "$Q" --out "$O/r")
ENCODE=(encode --model "$M" --corpus "$C" --out "$O/d.h5")
INDEX=(index --docs "$DOCS" --out "$O/g.h5")
SCORE=(score --model "$M" --queries "$Q" --corpus "$C")
PRET=(pretokenize --vocab "$D/vocab.txt" --in "$D/train.jsonl" --out "$O/shards" --quiet)
EVAL=(eval "$I/qrels.txt" "$I/run.trec")
for c in SEARCH ENCODE INDEX SCORE PRET TR; do
  unset -n base 2>/dev/null
  declare -n base=$c
  case_ fail "${base[0]} unknown flag" -- "${base[@]}" --no-such-flag
  case_ fail "${base[0]} missing value" -- "${base[@]}" --out
done
for c in import export tokenize demo eval selfcheck; do case_ any "$c --no-such-flag" -- "$c" --no-such-flag; done
case_ fail "no command" -- no-such-command
NUMS=("1e3" "10x" "-1" "0" "99999999999999999999" "" " 5" "0x10" "nan")
num_flags() {  # num_flags NAME FLAG -- BASE ARGS
  local name=$1 flag=$2 n
  shift 2; [[ $1 == -- ]] && shift
  for n in "${NUMS[@]}"; do case_ any "$name $flag '$n'" -- "$@" "$flag" "$n"; done
}
for f in --k --batch-queries --block-rows --query-max-len --seed; do num_flags search "$f" -- "${SEARCH[@]}"; done
for f in --entry-points --candidates --max-iter; do num_flags search-graph "$f" -- "${SEARCH[@]}" --graph "$G"; done
for f in --max-len --batch; do num_flags encode "$f" -- "${ENCODE[@]}"; done
for f in --neighbors --centroids --kmeans-iters --recall-sample --iters --block-rows --seed; do num_flags index "$f" -- "${INDEX[@]}"; done
for f in --query-max-len --doc-max-len --batch; do num_flags score "$f" -- "${SCORE[@]}"; done
for f in --query-max-len --doc-max-len --threads; do num_flags pretokenize "$f" -- "${PRET[@]}"; done
for f in --query-max-len --doc-max-len --lowercase; do num_flags import "$f" -- import --from "$I/imp" --bert-config "$I/imp/bert_config.json" --out "$O/m.h5" -q; done
num_flags tokenize --max-len -- tokenize --vocab "$V"
num_flags demo --steps -- demo --out "$O/demo"
for f in -l -M -N --permutations --seed; do num_flags eval "$f" -- eval --compare "$I/run.trec" "$I/qrels.txt" "$I/run.trec"; done
for m in recall.1e3 recall.10x 'P@10x' 'P@0' 'ndcg_cut.' 'RR(rel=x)@10' 'iprec_at_recall..5x' 'ndcg.1=x' 'nDCG@1e999'; do
  case_ fail "eval -m $m" -- eval -m "$m" "$I/qrels.txt" "$I/run.trec"
done
for kv in data.num_negatives=0 train.max_steps=1e3 train.lr=3e-4x train.batch_size=10x train.seed=99999999999999999999 \
          train.warmup_steps=5 train.lr=inf data.query_max_len=100000 model.kind=gpt nosuch.key=1; do
  case_ any "train --set $kv" -- "${TR[@]}" --set "$kv" --out "$O/t"
done
# options that only the model can validate
case_ fail "search --query-max-len 1" -- "${SEARCH[@]}" --query-max-len 1
case_ fail "search --query-max-len 100000" -- "${SEARCH[@]}" --query-max-len 100000
case_ fail "search --k 1000000000" -- "${SEARCH[@]}" --k 1000000000
case_ fail "score --doc-max-len 100000" -- "${SCORE[@]}" --doc-max-len 100000
case_ fail "encode --max-len 100000" -- "${ENCODE[@]}" --max-len 100000
case_ fail "encode --vocab larger than table" -- "${ENCODE[@]}" --vocab "$H/vocab-huge.txt"
case_ any "index --neighbors > docs (clamped)" -- "${INDEX[@]}" --neighbors 50
case_ fail "index --centroids > docs" -- "${INDEX[@]}" --centroids 50
case_ fail "search docs of another model" -- search --model "$M" --docs "$I/hyp-docs.h5" --queries "$Q" --out "$O/r"
case_ fail "search graph of other docs" -- search --model "$I/hyp.h5" --docs "$I/hyp-docs.h5" --queries "$D/val_queries.tsv" --graph "$G" --out "$O/r"
case_ fail "score docs-vs-model kinds" -- score --model "$I/docs.h5" --queries "$Q" --corpus "$C"
case_ any "search --dtype bf16 --streaming" -- "${SEARCH[@]}" --dtype bf16 --streaming
case_ fail "search --dtype fp8" -- "${SEARCH[@]}" --dtype fp8
case_ fail "search --preset nope" -- "${SEARCH[@]}" --graph "$G" --preset nope
case_ fail "search --streaming --graph" -- "${SEARCH[@]}" --graph "$G" --streaming
case_ fail "encode --pooling max" -- "${ENCODE[@]}" --pooling max
case_ fail "train --resume without run" -- train --resume auto --out "$O/none"

# ---- outputs that are inputs (also through a symlink and OUT.tmp)
ln -sf "$Q" "$I/q.link"; cp "$C" "$I/c.tmp"; rm -rf "$P" && cp -a "$I" "$P"
case_ fail "encode --out = --corpus" -- encode --model "$M" --corpus "$C" --out "$C"
case_ fail "encode --out = --model" -- encode --model "$M" --corpus "$C" --out "$M"
case_ fail "encode --out = --vocab" -- encode --model "$M" --corpus "$C" --vocab "$V" --out "$V"
case_ fail "encode --out.tmp = --corpus" -- encode --model "$M" --corpus "$I/c.tmp" --out "$I/c"
case_ fail "index --out = --docs" -- index --docs "$DOCS" --out "$DOCS"
case_ fail "search --out = --queries" -- search --model "$M" --docs "$DOCS" --queries "$Q" --out "$Q"
case_ fail "search --out = --queries (symlink)" -- search --model "$M" --docs "$DOCS" --queries "$Q" --out "$I/q.link"
case_ fail "search --out = --docs" -- search --model "$M" --docs "$DOCS" --queries "$Q" --out "$DOCS"
case_ fail "search --out = --model" -- search --model "$M" --docs "$DOCS" --queries "$Q" --out "$M"
case_ fail "search --out = --graph" -- search --model "$M" --docs "$DOCS" --queries "$Q" --graph "$G" --out "$G"
case_ fail "search --summary = --queries" -- "${SEARCH[@]}" --summary "$Q"
case_ fail "search --summary = --out" -- "${SEARCH[@]}" --summary "$O/r"
case_ fail "export --out = --model" -- export --model "$M" --out "$M"
case_ fail "export --config-out = --model" -- export --model "$M" --out "$O/x.st" --config-out "$M"
case_ fail "import --out = DIR/weights" -- import --from "$I/imp" --bert-config "$I/imp/bert_config.json" --out "$I/imp/pytorch_model.bin"
case_ fail "import --out = DIR/vocab.txt" -- import --from "$I/imp" --bert-config "$I/imp/bert_config.json" --out "$I/imp/vocab.txt"
case_ fail "import --out = --from FILE" -- import --from "$I/m.safetensors" --config "$I/m.config.json" --out "$I/m.safetensors"
case_ fail "import --out = --config" -- import --from "$I/m.safetensors" --config "$I/m.config.json" --out "$I/m.config.json"
case_ fail "pretokenize --out = --in" -- pretokenize --vocab "$D/vocab.txt" --in "$D/train.jsonl" --out "$D/train.jsonl" --quiet
case_ fail "pretokenize --out = shards" -- pretokenize --vocab "$D/vocab.txt" --in "$D/train.jsonl" --out "$I/shards" --quiet
case_ fail "train --out = --config" -- "${TR[@]}" --out "$I/tiny.ini"
case_ fail "train --out = data.train shards" -- "${TR[@]}" --out "$I/shards"
case_ fail "demo --out = a file" -- demo --steps 2 --out "$Q"

# ---- outputs that cannot be written: no such directory, read-only, not a file
RO=/sys   # root ignores permission bits; nobody can create a file in sysfs
if [ "$(id -u)" != 0 ]; then mkdir -p "$W/ro" && chmod 555 "$W/ro" && RO=$W/ro; fi
ln -sf /dev/null "$W/devnull"   # a device; through a link, so a writer that renames over it replaces only the link
for dest in "$O/nodir/x" "$RO/x" "$W/devnull" "$I/imp" "$C/x"; do
  dn=$(echo "$dest" | sed "s#$W#W#")
  case_ fail "encode --out $dn" -- encode --model "$M" --corpus "$C" --out "$dest"
  case_ fail "index --out $dn" -- index --docs "$DOCS" --out "$dest"
  case_ fail "search --out $dn" -- search --model "$M" --docs "$DOCS" --queries "$Q" --out "$dest"
  case_ fail "search --summary $dn" -- "${SEARCH[@]}" --summary "$dest"
  case_ fail "export --out $dn" -- export --model "$M" --out "$dest"
  case_ fail "import --out $dn" -- import --from "$I/imp" --bert-config "$I/imp/bert_config.json" --out "$dest" -q
  case_ fail "pretokenize --out $dn" -- pretokenize --vocab "$D/vocab.txt" --in "$D/train.jsonl" --out "$dest" --quiet
  dirok=fail; [ "$dest" = "$I/imp" ] && dirok=any   # an existing directory is a valid run folder
  case_ $dirok "train --out $dn" -- "${TR[@]}" --out "$dest"
  case_ $dirok "demo --out $dn" -- demo --steps 2 --out "$dest"
done

# ---------------------------------------------------------------- report
echo
echo "hostile_sweep: $N cases: ok ${COUNT[ok]}, crash ${COUNT[crash]}, hang ${COUNT[hang]}, data-loss ${COUNT[data-loss]}"
if [ ${#BAD[@]} -gt 0 ]; then
  echo; echo "not ok:"; printf '  %s\n' "${BAD[@]}"
fi
if [ ${#NOTES[@]} -gt 0 ]; then
  echo; echo "notes (ok, but worth a look):"; printf '  %s\n' "${NOTES[@]}"
fi
[ ${#BAD[@]} -eq 0 ]
