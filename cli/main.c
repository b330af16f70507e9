// main.c: the `hyp` executable (the command table and dispatch are in cli/hyp.c).
#include "cli/commands.h"

int main(int argc, char **argv) { return hyp_main(argc, argv); }
