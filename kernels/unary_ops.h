// unary_ops.h: the one table of element-wise activations. Every user — the UnaryOp enum
// (kernels.h), the CPU loops, the CUDA kernels, the autograd op, the tests — expands this
// list, so adding an activation is: its HYP_HD formulas (value and derivative) in
// kernels/elementwise.h, one row here, and its fixture case in tests/fixtures/fx_basic.py.
// Columns: enum value, name (errors, fixtures, tape dumps), forward, derivative f'(x).
// The first row is the zero value: BERT's exact GELU, so a zero-initialised config means it.
#ifndef HYP_UNARY_OPS_H
#define HYP_UNARY_OPS_H

#define HYP_UNARY_OPS(X)                                              \
    X(UN_GELU, "gelu", hyp_gelu, hyp_gelu_grad)                       \
    X(UN_RELU, "relu", hyp_relu, hyp_relu_grad)                       \
    X(UN_GELU_TANH, "gelu_tanh", hyp_gelu_tanh, hyp_gelu_tanh_grad)   \
    X(UN_SILU, "silu", hyp_silu, hyp_silu_grad)

#endif
