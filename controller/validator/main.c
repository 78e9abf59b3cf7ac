/* main.c — gpu-policy-validator entry point (filled in by the validator work). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("gpu-policy-validator %s\n", GPC_VERSION);
    return 0;
  }
  return 1;
}
