# hypencoder.c build.
#   make            CPU library build/libhyp.a + bin/hyp (+ CUDA backend when nvcc works)
#   make CUDA=0     never build the CUDA backend;  make CUDA=1  require it
#   make test       build and run every Criterion suite in tests/
#   make bench      build and run the benchmarks in bench/
#   make SAN=address,undefined test   sanitizer build (separate build dir)
# Optional parts are found by compiling and linking a tiny probe program.

CC      ?= cc
NVCC    ?= nvcc
CUDA_HOME ?= /usr/local/cuda
OPT     ?= -O3
SAN     ?=
VERSION := 0.1.0

BUILD := build$(if $(SAN),-san)
BIN   := bin$(if $(SAN),-san)

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

# CUDA: CUDA=auto (default) builds it when nvcc and the libraries link.
CUDA ?= auto
ifeq ($(CUDA),0)
HAVE_CUDA :=
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
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 --expt-relaxed-constexpr
ifeq ($(HAVE_CUDA),yes)
CFLAGS += -DHYP_HAVE_CUDA
LDLIBS += -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++

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
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
BENCH_SRC:= $(wildcard bench/bench_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BIN)/%)
LIBHYP   := $(BUILD)/libhyp.a

.PHONY: all test bench clean summary fixtures fuzz
.SECONDARY: $(TEST_COMMON_OBJ)
all: $(LIBHYP) $(BIN)/hyp summary

summary: $(LIBHYP) $(BIN)/hyp
	@echo "hypencoder.c $(VERSION) built: $(BIN)/hyp, $(LIBHYP)"
	@echo "  blas: OpenBLAS $(if $(BLAS_OMP_DIR),OpenMP build ($(BLAS_OMP_DIR)),default build (install libopenblas-openmp-dev for the OpenMP build))"
	@echo "  backends: cpu$(if $(HAVE_CUDA), cuda (sm_80, sm_90),)   optional: $(if $(strip $(FEATURES)),$(strip $(FEATURES)),none)$(if $(HAVE_CRITERION), criterion)"
	@$(if $(HAVE_CUDA),,echo "  cuda: not built ($(if $(filter 0,$(CUDA)),CUDA=0,nvcc/cuBLASLt probe failed))")

# Objects depend on the flags they were built with: switching CUDA=0/1 rebuilds them.
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD); echo '$(CFLAGS) | $(NVCCFLAGS) | $(LDLIBS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CFLAGS) | $(NVCCFLAGS) | $(LDLIBS)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Only the NCCL engine includes the CUDA runtime's and NCCL's headers.
$(BUILD)/train/comm_nccl.o: CFLAGS += $(if $(HAVE_NCCL),-I$(CUDA_HOME)/include)

$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIBHYP): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/hyp: $(CLI_OBJ) $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $(CLI_OBJ) $(LIBHYP) -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON_OBJ) $(LIBHYP) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -DHYP_BIN='"$(BIN)/hyp"' -MMD -MP $< $(TEST_COMMON_OBJ) $(LIBHYP) -o $@ -lcriterion $(LDLIBS)

$(BIN)/bench_%: bench/bench_%.c $(LIBHYP)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDSAN) $< $(LIBHYP) -o $@ $(LDLIBS)

# Each suite runs in its own process; the first failure fails `make test`.
# HYP_TEST_JOBS sets Criterion's worker count (default 2, the CI core count).
test: $(TEST_BIN) $(BIN)/hyp
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
	rm -rf build build-san bin bin-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
