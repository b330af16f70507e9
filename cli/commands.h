// commands.h: one function per `hyp` subcommand; each lives in cli/cmd_<name>.c.
// A command returns the process exit status (0 ok, 1 bad input/usage, 2 internal).
#ifndef HYP_COMMANDS_H
#define HYP_COMMANDS_H
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_selfcheck(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_pretokenize(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_label(int argc, char **argv);

// The whole `hyp` command line (cli/hyp.c); cli/main.c calls it, and so does the test-only
// bin/hyp-faults after installing its fault hooks.
int hyp_main(int argc, char **argv);
#endif
