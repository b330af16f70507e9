#include <mpi.h>
int main(int argc, char **argv) {
    int up = 0;
    MPI_Initialized(&up);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return up;
}
