#include <ini.h>
int main(void) { return ini_parse_string("", 0, 0); }
