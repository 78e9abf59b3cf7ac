/* render_cmd.h — `gpu-policy-controller render`: the objects and node labels
 * a policy would produce, without a cluster (dry run for GitOps review).
 *
 *   gpu-policy-controller render -f policy.yaml [--nodes nodes.json]
 *                                [--templates-dir DIR] [--namespace NS]
 *
 * Prints every object the controller would apply (YAML documents separated
 * by ---, ready for `kubectl diff -f -`), then, with --nodes (a NodeList, a
 * JSON array of Nodes or one Node, JSON or YAML, e.g. `kubectl get nodes -o
 * json`), the label changes the first reconcile would make on each node, as
 * YAML comments so the output stays appliable. Pods are not read: the plan
 * shows what happens before any operand runs.
 *
 * Exit codes: 0 ok, 1 invalid input (the message names the file and field),
 * 2 usage error.
 */
#ifndef GPC_RENDER_CMD_H
#define GPC_RENDER_CMD_H

#include <stdio.h>

/* argv[0] is "render". Writes to stdout/stderr. */
int render_cmd_main(int argc, char **argv);

/* The same with explicit streams (tests). */
int render_cmd_main_io(int argc, char **argv, FILE *out, FILE *errf);

#endif
