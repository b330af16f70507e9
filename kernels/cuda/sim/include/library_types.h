// library_types.h of the CUDA simulator: the data types cuBLAS describes matrices with
// (values as in the real header).
#ifndef HYP_SIM_LIBRARY_TYPES_H
#define HYP_SIM_LIBRARY_TYPES_H
typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_8I = 3,
    CUDA_R_32I = 10,
    CUDA_R_16BF = 14
} cudaDataType;
#endif
