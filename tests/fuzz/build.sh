#!/bin/sh
# Fuzz the weight readers with libFuzzer (clang -fsanitize=fuzzer,address,undefined).
#   tests/fuzz/build.sh              build build/fuzz/fuzz_safetensors, build/fuzz/fuzz_torchbin
#   tests/fuzz/build.sh run [SECS]   build, then fuzz each target SECS seconds (default 180) from
#                                    tests/fuzz/corpus_<t> + fixture seeds, and merge (-merge=1)
#                                    what was found back into tests/fuzz/corpus_<t>
# The kept corpora are replayed by tests/test_fuzz_corpus.c in `make test`.
set -e
cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
OUT=build/fuzz
mkdir -p $OUT
SRC="model/weights.c model/torchbin.c autograd/util.c"
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -I. -DHYP_HAVE_JANSSON -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
for t in safetensors torchbin; do
    $CLANG $FLAGS tests/fuzz/fuzz_$t.c $SRC -o $OUT/fuzz_$t -ljansson
done
echo "built $OUT/fuzz_safetensors $OUT/fuzz_torchbin"
[ "$1" = run ] || exit 0
SECS=${2:-180}

# seeds from the fixtures (tests/fixtures/make_import_fixtures.py)
python3 - <<'PY'
import glob, os, zipfile
fx = "tests/fixtures/import"
for t in ("safetensors", "torchbin"):
    os.makedirs(f"build/fuzz/seeds_{t}", exist_ok=True)
def put(t, name, data):
    open(f"build/fuzz/seeds_{t}/{name}", "wb").write(data)
for p in [f"{fx}/dtypes.safetensors"] + glob.glob(f"{fx}/bad/*.safetensors"):
    put("safetensors", os.path.basename(p), open(p, "rb").read())
for p in [f"{fx}/shared.bin"] + glob.glob(f"{fx}/bad/*.bin"):
    put("torchbin", "zip_" + os.path.basename(p), b"\0" + open(p, "rb").read())
for p in [f"{fx}/shared.bin", f"{fx}/mlm_bin/pytorch_model.bin", f"{fx}/hypencoder/pytorch_model.bin", f"{fx}/bad/checkpoint.bin"]:
    z = zipfile.ZipFile(p)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    put("torchbin", "pkl_" + p.replace("/", "_"), b"\1" + z.read(pkl))
PY
for t in safetensors torchbin; do
    mkdir -p tests/fuzz/corpus_$t $OUT/work_$t
    cp -n tests/fuzz/corpus_$t/* $OUT/work_$t/ 2>/dev/null || true
    cp -n $OUT/seeds_$t/* $OUT/work_$t/
    echo "== fuzz_$t for ${SECS}s"
    $OUT/fuzz_$t $OUT/work_$t -max_total_time=$SECS -max_len=16384 -rss_limit_mb=2048 \
        -dict=tests/fuzz/$t.dict -print_final_stats=1 -close_fd_mask=3 2>&1 | tail -25
    rm -rf $OUT/merged_$t && mkdir -p $OUT/merged_$t
    $OUT/fuzz_$t -merge=1 $OUT/merged_$t $OUT/work_$t 2>&1 | tail -2
    rm -rf tests/fuzz/corpus_$t && mv $OUT/merged_$t tests/fuzz/corpus_$t
    echo "corpus_$t: $(ls tests/fuzz/corpus_$t | wc -l) files, $(du -sk tests/fuzz/corpus_$t | cut -f1) KiB"
done
