#!/usr/bin/env bash
# tests/sim/mutations.sh: shows that the simulated CUDA suite catches real kernel bugs.
# Each mutation is a one-line change to a copy of a real kernel source; the CUDA suites
# are rebuilt in the copy with make CUDA=sim and must FAIL. Prints one line a mutation
# and exits 1 if any mutation survives (or does not apply).
#   tests/sim/mutations.sh [--all]     --all: run every suite, not just the op suites
# Takes a few minutes (one incremental simulator build and test run per mutation).
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
suites="test_cuda_backend test_ops_basic test_ops_matmul test_ops_shape"
[ "${1:-}" = "--all" ] && suites=$(cd tests && ls test_*.c | sed 's/\.c$//')

# file ~ exact text (first occurrence; \n for a newline) ~ replacement ~ what it models
mutations=(
  'kernels/cuda/common.cuh~for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);~for (int o = 16; o > 1; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);~warp_sum skips its last shuffle step'
  'kernels/cuda/common.cuh~    if (lane == 0) sh[wid] = v;\n    __syncthreads();~    if (lane == 0) sh[wid] = v;~block_sum drops the barrier between writing and reading shared memory'
  'kernels/cuda/rows.cu~y[idx] = x[idx] + b[o * inner + i];~y[idx] = x[idx] + b[o * inner + i + 1];~add_rows reads the bias one element off'
  'kernels/cuda/softmax.cu~if (c < cols && (!mr || mr[c] != 0)) v[k] = xr[c];~if (c < cols && (!mr || mr[c] != 0)) v[k] = xr[c + 1 < cols ? c + 1 : c];~softmax forward reads the neighbouring column'
  'kernels/cuda/gemm.cu~const cublasOperation_t opa = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;~const cublasOperation_t opa = k->tb ? CUBLAS_OP_N : CUBLAS_OP_T;~cuBLASLt transpose of B swapped'
  'kernels/cuda/gemm.cu~B, tin, k->tb ? k->K : k->N, k->sB,~B, tin, k->tb ? k->N : k->K, k->sB,~wrong leading dimension of B in the cuBLAS fallback'
  'kernels/cuda/gemm.cu~p->lc = make_layout(CUDA_R_32F, k->N, k->M, k->N, k->batch, k->sC);~p->lc = make_layout(CUDA_R_32F, k->N, k->M, k->M, k->batch, k->sC);~wrong leading dimension of C in the cuBLASLt layout'
  'kernels/cuda/norm.cu~const float mu = mean[row], rs = rstd[row];~const float mu = mean[row], rs = rstd[row > 0 ? row - 1 : row];~layernorm backward reads the previous row'"'"'s rstd'
  'kernels/cuda/embedding.cu~if (ids[i] == padding_idx) continue;~(void)padding_idx;~embedding backward forgets the padding row'
  'kernels/cuda/reduce.cu~for (int c = lane; c < C; c += 32) s += expf(xr[c] - mx);~for (int c = lane + 1; c < C; c += 32) s += expf(xr[c] - mx);~cross-entropy skips a column per lane'
)

# apply FILE OLD NEW: replaces the first occurrence; exit 3 when OLD is not there.
apply() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2].replace('\\n', '\n'), sys.argv[3].replace('\\n', '\n')
s = open(path).read()
if old not in s:
    sys.exit(3)
open(path, 'w').write(s.replace(old, new, 1))
PY
}

work=$(mktemp -d /tmp/hyp_mut.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "mutations: copying the tree to $work and building the simulator once"
mkdir -p "$work/src"
tar -C "$root" --exclude=./.git --exclude=./build --exclude=./build-san --exclude=./bin --exclude=./bin-san \
    --exclude=./hyp-demo -cf - . | tar -C "$work/src" -xf -
ln -s "$root/../shared" "$work/shared" 2>/dev/null || true
(cd "$work/src" && make -s -j2 CUDA=sim >/dev/null 2>&1 && make -s CUDA=sim $(for s in $suites; do printf 'build-sim/tests/%s ' "$s"; done) >/dev/null 2>&1) \
  || { echo "mutations: the unmutated tree does not build"; exit 1; }
for s in $suites; do
  (cd "$work/src" && build-sim/tests/$s --jobs=2 >/dev/null 2>&1) || { echo "mutations: $s fails before any mutation"; exit 1; }
done

survived=0
for m in "${mutations[@]}"; do
  IFS='~' read -r file old new what <<<"$m"
  cp "$root/$file" "$work/src/$file"
  if ! apply "$work/src/$file" "$old" "$new"; then
    echo "NOT APPLIED  $file: $what"; survived=$((survived + 1)); continue
  fi
  caught=""
  if ! (cd "$work/src" && make -s -j2 CUDA=sim $(for s in $suites; do printf 'build-sim/tests/%s ' "$s"; done) >/dev/null 2>&1); then
    caught="(does not build)"
  else
    for s in $suites; do
      if ! (cd "$work/src" && timeout 300 build-sim/tests/$s --jobs=2 >"$work/log" 2>&1); then
        caught=$(grep -m1 -E "Assertion Failed|CRASH|hyp-sim:|hyp:" -A2 "$work/log" | grep -v '^\[----\] *$' | head -2 | tr '\n' ' ' | cut -c1-150)
        caught="$s: $caught"
        break
      fi
    done
  fi
  if [ -n "$caught" ]; then echo "caught       $file: $what -- $caught"
  else echo "SURVIVED     $file: $what"; survived=$((survived + 1)); fi
  cp "$root/$file" "$work/src/$file"
done
echo "mutations: ${#mutations[@]} tried, $(( ${#mutations[@]} - survived )) caught, $survived survived"
[ "$survived" -eq 0 ]
