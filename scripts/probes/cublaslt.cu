#include <cublasLt.h>
int main(void) { cublasLtHandle_t h; return (int)cublasLtCreate(&h); }
