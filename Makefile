# hypencoder.c build.
#   make            CPU library build/libhyp.a + bin/hyp (+ CUDA backend when nvcc works)
#   make CUDA=0     never build the CUDA backend;  make CUDA=1  require it
#   make test       build and run every Criterion suite in tests/
#   make bench      build and run the benchmarks in bench/
#   make SAN=address,undefined test   sanitizer build (separate build dir)
#   make CUDA=sim test   the CUDA backend's kernels compiled as host C++ against the SIMT
#                   simulator (kernels/cuda/sim/): build-sim/, bin-sim/, no GPU needed
# Optional parts are found by compiling and linking a tiny probe program.

CC      ?= cc
NVCC    ?= nvcc
CUDA_HOME ?= /usr/local/cuda
OPT     ?= -O3
SAN     ?=
VERSION := 0.1.0

CUDA ?= auto
SIM   := $(filter sim,$(CUDA))
BUILD := build$(if $(SAN),-san)$(if $(SIM),-sim)
BIN   := bin$(if $(SAN),-san)$(if $(SIM),-sim)

# ARCH=native: the build machine runs the code (AVX-512/FMA here); ARCH=x86-64-v3 for portable binaries.
ARCH    ?= native
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -g $(OPT) -I. -march=$(ARCH)
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=$(SAN)
endif

# ---------------------------------------------------------------- probes
, := ,
# probe(file, cflags, libs): "yes" when scripts/probes/<file> compiles and links.
probe = $(shell $(CC) $(2) scripts/probes/$(1) -o /tmp/hyp_probe_$$$$ $(3) >/dev/null 2>&1 && echo yes; rm -f /tmp/hyp_probe_$$$$)

HDF5_CFLAGS := $(if $(wildcard /usr/include/hdf5/serial/hdf5.h),-I/usr/include/hdf5/serial)
HDF5_LIBS   := $(if $(wildcard /usr/include/hdf5/serial/hdf5.h),-lhdf5_serial,-lhdf5)
HAVE_HDF5     := $(call probe,hdf5.c,$(HDF5_CFLAGS),$(HDF5_LIBS))
# Prefer OpenBLAS's OpenMP build: our kernels use OpenMP, and the pthreads build's
# spinning workers fight OpenMP's threads for the cores between GEMMs.
BLAS_OMP_DIR  := $(firstword $(wildcard /usr/lib/*/openblas-openmp))
BLAS_LIBS     := $(if $(BLAS_OMP_DIR),-L$(BLAS_OMP_DIR) -Wl$(,)-rpath$(,)$(BLAS_OMP_DIR)) -lopenblas
HAVE_BLAS     := $(call probe,blas.c,-fopenmp,$(BLAS_LIBS))
HAVE_CRITERION:= $(call probe,criterion.c,,-lcriterion)
HAVE_UTF8PROC := $(call probe,utf8proc.c,,-lutf8proc)
HAVE_JANSSON  := $(call probe,jansson.c,,-ljansson)
HAVE_INIH     := $(call probe,inih.c,,-linih)

ifneq ($(HAVE_HDF5),yes)
$(error HDF5 not found: apt-get install libhdf5-dev)
endif
ifneq ($(HAVE_BLAS),yes)
$(error OpenBLAS not found: apt-get install libopenblas-dev)
endif

# CUDA: CUDA=auto (default) builds it when nvcc and the libraries link; CUDA=sim builds
# the same kernel sources with $(CXX) against the simulator instead (no nvcc, no GPU).
ifeq ($(CUDA),0)
HAVE_CUDA :=
else ifeq ($(CUDA),sim)
HAVE_CUDA := sim
else
HAVE_CUDA := $(shell $(NVCC) scripts/probes/cublaslt.cu -o /tmp/hyp_probe_cu$$$$ -lcublasLt -lcublas >/dev/null 2>&1 && echo yes; rm -f /tmp/hyp_probe_cu$$$$)
ifeq ($(CUDA),1)
ifneq ($(HAVE_CUDA),yes)
$(error CUDA=1 but nvcc/cuBLASLt could not compile and link a probe)
endif
endif
endif

# MPI: MPI=auto (default) builds the mpi communicator when mpicc's own flags
# (--showme:compile / --showme:link) compile and link a probe; MPI=0 never.
MPICC ?= mpicc
MPI   ?= auto
ifneq ($(MPI),0)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
HAVE_MPI   := $(if $(MPI_LIBS),$(call probe,mpi.c,$(MPI_CFLAGS),$(MPI_LIBS)))
endif
# NCCL: with the CUDA backend, when nccl.h and libnccl compile and link a probe; NCCL=0 never.
NCCL ?= auto
ifeq ($(HAVE_CUDA),yes)
ifneq ($(NCCL),0)
HAVE_NCCL := $(call probe,nccl.c,-I$(CUDA_HOME)/include,-L$(CUDA_HOME)/lib64 -lnccl -lcudart)
endif
endif

CFLAGS  := $(CFLAGS_BASE) $(HDF5_CFLAGS)
LDLIBS  := $(HDF5_LIBS) $(BLAS_LIBS) -lm -lpthread
FEATURES :=
ifeq ($(HAVE_UTF8PROC),yes)
CFLAGS += -DHYP_HAVE_UTF8PROC
LDLIBS += -lutf8proc
FEATURES += utf8proc
endif
ifeq ($(HAVE_JANSSON),yes)
CFLAGS += -DHYP_HAVE_JANSSON
LDLIBS += -ljansson
FEATURES += jansson
endif
ifeq ($(HAVE_INIH),yes)
CFLAGS += -DHYP_HAVE_INIH
LDLIBS += -linih
FEATURES += inih
endif
CFLAGS += -DHYP_VERSION=\"$(VERSION)\"

NVCCFLAGS := -O2 -std=c++17 -I. -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-fPIC \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_90,code=compute_90 -lineinfo --expt-relaxed-constexpr
ifeq ($(HAVE_CUDA),yes)
CFLAGS += -DHYP_HAVE_CUDA
LDLIBS += -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++

endif
# The simulator build: .cu files as C++17 (ISO mode: no FMA contraction, as in the C code
# the CPU backend is built from), the simulator's cuda_runtime.h / cuBLAS headers first.
SIM_CXXFLAGS := -std=c++17 -D_GNU_SOURCE -DHYP_CUDA_SIM -Ikernels/cuda/sim/include -I. -Wall -Wextra \
  -Wno-unused-parameter -Wno-unknown-pragmas -g -O2 -march=$(ARCH) -ffp-contract=off
ifneq ($(SAN),)
SIM_CXXFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(HAVE_CUDA),sim)
CFLAGS += -DHYP_HAVE_CUDA -DHYP_CUDA_SIM
LDLIBS += -lstdc++
endif
ifeq ($(HAVE_MPI),yes)
CFLAGS += -DHYP_HAVE_MPI $(MPI_CFLAGS)
LDLIBS += $(MPI_LIBS)
FEATURES += mpi
endif
ifeq ($(HAVE_NCCL),yes)
CFLAGS += -DHYP_HAVE_NCCL
LDLIBS += -lnccl
FEATURES += nccl
endif

# ---------------------------------------------------------------- sources
LIB_DIRS := autograd kernels kernels/cpu model data train eval search
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CU_SRC   := $(if $(HAVE_CUDA),$(wildcard kernels/cuda/*.cu))
SIM_SRC  := $(if $(SIM),$(wildcard kernels/cuda/sim/*.cpp))
SIM_TEST_SRC := $(if $(SIM),$(wildcard tests/sim/test_*.cu))
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
BENCH_SRC:= $(wildcard bench/bench_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o) $(SIM_SRC:%.cpp=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI_LIB_OBJ := $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ))   # every command, without main()
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(SIM_TEST_SRC:tests/sim/%.cu=$(BUILD)/tests/sim/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BIN)/%)
LIBHYP   := $(BUILD)/libhyp.a

.PHONY: all test bench clean summary fixtures fuzz
.SECONDARY: $(TEST_COMMON_OBJ)
all: $(LIBHYP) $(BIN)/hyp summary

summary: $(LIBHYP) $(BIN)/hyp
	@echo "hypencoder.c $(VERSION) built: $(BIN)/hyp, $(LIBHYP)"
	@echo "  blas: OpenBLAS $(if $(BLAS_OMP_DIR),OpenMP build ($(BLAS_OMP_DIR)),default build (install libopenblas-openmp-dev for the OpenMP build))"
	@echo "  backends: cpu$(if $(SIM), cuda (simulated on the CPU: kernels/cuda/sim),$(if $(HAVE_CUDA), cuda (sm_80, sm_90),))   optional: $(if $(strip $(FEATURES)),$(strip $(FEATURES)),none)$(if $(HAVE_CRITERION), criterion)"
	@$(if $(HAVE_CUDA),,echo "  cuda: not built ($(if $(filter 0,$(CUDA)),CUDA=0,nvcc/cuBLASLt probe failed))")

# Objects depend on the flags they were built with: switching CUDA=0/1 rebuilds them.
FLAGS_STAMP := $(BUILD)/.flags
ALL_FLAGS := $(CFLAGS) | $(NVCCFLAGS) | $(SIM_CXXFLAGS) | $(LDLIBS)
$(shell mkdir -p $(BUILD); echo '$(ALL_FLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(ALL_FLAGS)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Only the NCCL engine includes the CUDA runtime's and NCCL's headers.
$(BUILD)/train/comm_nccl.o: CFLAGS += $(if $(HAVE_NCCL),-I$(CUDA_HOME)/include)

ifeq ($(HAVE_CUDA),sim)
$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(SIM_CXXFLAGS) -MMD -MP -x c++ -c $< -o $@

$(BUILD)/%.o: %.cpp $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(SIM_CXXFLAGS) -MMD -MP -c $< -o $@

# The simulator's own suites: CUDA kernels written for the test, C++ with Criterion.
$(BUILD)/tests/sim/%: tests/sim/%.cu $(TEST_COMMON_OBJ) $(LIBHYP) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(SIM_CXXFLAGS) -MMD -MP -x c++ $< -x none $(TEST_COMMON_OBJ) $(LIBHYP) -o $@ -fopenmp -lcriterion $(LDLIBS)
else
$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
endif

$(LIBHYP): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/hyp: $(CLI_OBJ) $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $(CLI_OBJ) $(LIBHYP) -o $@ $(LDLIBS)

# The test-only hyp with fault hooks from its environment (tests/fault/hyp_faults.c).
$(BIN)/hyp-faults: tests/fault/hyp_faults.c $(CLI_LIB_OBJ) $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $< $(CLI_LIB_OBJ) $(LIBHYP) -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON_OBJ) $(LIBHYP) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -DHYP_BIN='"$(BIN)/hyp"' -DHYP_FAULTS_BIN='"$(BIN)/hyp-faults"' -MMD -MP $< $(TEST_COMMON_OBJ) $(LIBHYP) -o $@ -lcriterion $(LDLIBS)

# Large-size GPU checks for scripts/gpu-check.sh (not part of make test).
$(BIN)/gpu_probes: tests/gpu/gpu_probes.c $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $< $(LIBHYP) -o $@ $(LDLIBS)

$(BIN)/bench_%: bench/bench_%.c $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $< $(LIBHYP) -o $@ $(LDLIBS)

# Each suite runs in its own process; the first failure fails `make test`.
# HYP_TEST_JOBS sets Criterion's worker count (default 2, the CI core count).
test: $(TEST_BIN) $(BIN)/hyp $(BIN)/hyp-faults
	@scripts/run_tests.sh $(TEST_BIN)

bench: $(BENCH_BIN)
	@set -e; for b in $(BENCH_BIN); do echo "== $$b"; $$b; done

fixtures:
	python3 tests/fixtures/make_fixtures.py
	python3 tests/fixtures/make_tokenizer_fixtures.py
	python3 tests/fixtures/make_import_fixtures.py

# libFuzzer targets for the weight readers (clang); FUZZ_SECS per target.
fuzz:
	tests/fuzz/build.sh run $(or $(FUZZ_SECS),180)

clean:
	rm -rf build build-san build-sim bin bin-san bin-sim

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
