#include <utf8proc.h>
int main(void) { return utf8proc_version() == 0; }
