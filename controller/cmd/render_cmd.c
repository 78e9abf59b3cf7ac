/* render_cmd.c — the `render` subcommand: policy file -> objects + label plan. */
#include "render_cmd.h"

#include <getopt.h>
#include <string.h>

#include "alloc.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "decode.h"
#include "templates.h"
#include "yaml2json.h"

#define EXIT_INVALID 1
#define EXIT_USAGE 2
/* `kubectl get nodes -o json` on a large cluster: ~15 KB per node. */
#define NODES_MAX_BYTES (256u * 1024 * 1024)

struct render_args {
  const char *policy_file;
  const char *nodes_file;
  const char *templates_dir;
  const char *namespace;
};

static void usage(FILE *f) {
  fputs("usage: gpu-policy-controller render -f POLICY.yaml [--nodes NODES.json]\n"
        "                                    [--templates-dir DIR] [--namespace NS]\n"
        "Prints the objects a ClusterGPUPolicy produces and, with --nodes, the node\n"
        "labels its first reconcile would write. No cluster is contacted.\n"
        "  -f, --filename PATH     the policy (YAML or JSON; the first document)\n"
        "      --nodes PATH        a NodeList / array of Nodes (kubectl get nodes -o json)\n"
        "      --templates-dir DIR operand templates overriding the built-in ones\n"
        "      --namespace NS      the controller's namespace (default gpu-policy-system)\n",
        f);
}

static int parse_args(int argc, char **argv, struct render_args *a, FILE *errf) {
  static const struct option longopts[] = {{"filename", required_argument, NULL, 'f'},
                                           {"nodes", required_argument, NULL, 'n'},
                                           {"templates-dir", required_argument, NULL, 't'},
                                           {"namespace", required_argument, NULL, 's'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  *a = (struct render_args){.namespace = "gpu-policy-system"};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'f':
      a->policy_file = optarg;
      break;
    case 'n':
      a->nodes_file = optarg;
      break;
    case 't':
      a->templates_dir = optarg;
      break;
    case 's':
      a->namespace = optarg;
      break;
    case 'h':
      usage(errf);
      return -1;
    default:
      fprintf(errf, "gpu-policy-controller render: unknown or incomplete option %s\n",
              argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(errf, "gpu-policy-controller render: unexpected argument %s\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (!a->policy_file) {
    fprintf(errf, "gpu-policy-controller render: -f POLICY.yaml is required\n");
    return EXIT_USAGE;
  }
  return 0;
}

/* JSON first (fast, no size cap beyond ours), YAML as a fallback. */
static json_t *load_nodes_doc(const char *path, struct gpc_error *err) {
  json_error_t jerr;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (doc) return doc;
  return yaml2json_file(path, NODES_MAX_BYTES, err);
}

static int load_nodes(const char *path, struct gpc_node **out, size_t *n, struct gpc_error *err) {
  json_t *doc = load_nodes_doc(path, err);
  if (!doc) return gpc_fail(err, GPC_E_INVAL, "--nodes %s: %s", path, err->msg);
  json_t *items = doc;
  if (json_is_object(doc)) items = json_object_get(doc, "items");
  json_t *single = NULL;
  if (!json_is_array(items) && json_is_object(doc) &&
      json_is_string(json_object_get(doc, "kind")) &&
      strcmp(json_string_value(json_object_get(doc, "kind")), "Node") == 0)
    items = single = json_pack("[O]", doc);
  if (!json_is_array(items)) {
    json_decref(doc);
    return gpc_fail(err, GPC_E_INVAL,
                    "--nodes %s: expected a NodeList, an array of Nodes or a Node", path);
  }
  size_t count = json_array_size(items), i;
  struct gpc_node *nodes = gpc_calloc(count + 1, sizeof(*nodes));
  json_t *it;
  json_array_foreach(items, i, it) {
    gpc_node_init(&nodes[i]);
    if (!json_is_string(json_object_get(json_object_get(it, "metadata"), "name"))) {
      for (size_t j = 0; j <= i; j++)
        gpc_node_release(&nodes[j]);
      free(nodes);
      json_decref(single);
      json_decref(doc);
      return gpc_fail(err, GPC_E_INVAL, "--nodes %s: item %zu: metadata.name: required", path, i);
    }
    decode_node(&nodes[i], it);
  }
  json_decref(single);
  json_decref(doc);
  *out = nodes;
  *n = count;
  return GPC_OK;
}

static void print_label_plan(FILE *out, const struct gpc_plan *plan, const char *policy) {
  fprintf(out, "# Node label plan for policy %s: %u matched, %u conflicted, %u opted out\n", policy,
          plan->matched, plan->conflicted, plan->opted_out);
  if (plan->n_patches == 0) fputs("#   (no label changes)\n", out);
  for (size_t i = 0; i < plan->n_patches; i++) {
    json_t *labels = json_object_get(json_object_get(plan->patches[i].patch, "metadata"), "labels");
    fprintf(out, "#   %s:", plan->patches[i].node);
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
      if (json_is_null(v))
        fprintf(out, " -%s", k);
      else
        fprintf(out, " %s=%s", k, json_string_value(v));
    }
    fputc('\n', out);
  }
}

static int run(const struct render_args *a, FILE *out, struct gpc_error *err) {
  struct gpc_policy *p = NULL;
  struct gpc_templates *t = NULL;
  struct gpc_node *nodes = NULL;
  size_t n_nodes = 0;
  struct gpc_plan plan = {0};
  const struct gpc_node **np = NULL;
  int rc = policy_from_file(a->policy_file, &p, err);
  if (rc) {
    char msg[GPC_ERROR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    rc = gpc_fail(err, rc, "%s: %s", a->policy_file, msg);
    goto out;
  }
  if ((rc = templates_load(a->templates_dir, &t, err))) goto out;
  if (a->nodes_file && (rc = load_nodes(a->nodes_file, &nodes, &n_nodes, err))) goto out;
  np = gpc_calloc(n_nodes + 1, sizeof(*np));
  for (size_t i = 0; i < n_nodes; i++)
    np[i] = &nodes[i];
  const struct gpc_policy *pols[] = {p};
  struct gpc_plan_input in = {.policy = p,
                              .policies = pols,
                              .n_policies = 1,
                              .nodes = np,
                              .n_nodes = n_nodes,
                              .templates = t,
                              .namespace = a->namespace};
  if ((rc = plan_compute(&in, &plan, err))) goto out;
  size_t i;
  json_t *o;
  json_array_foreach(plan.objects, i, o) {
    if ((rc = yaml2json_emit(o, out, err))) goto out;
  }
  if (a->nodes_file) print_label_plan(out, &plan, p->name);
out:
  plan_release(&plan);
  free(np);
  for (size_t j = 0; j < n_nodes; j++)
    gpc_node_release(&nodes[j]);
  free(nodes);
  templates_free(t);
  policy_free(p);
  return rc;
}

int render_cmd_main_io(int argc, char **argv, FILE *out, FILE *errf) {
  struct render_args a;
  int rc = parse_args(argc, argv, &a, errf);
  if (rc) return rc < 0 ? 0 : rc;
  struct gpc_error err = {0};
  if (run(&a, out, &err) != GPC_OK) {
    fprintf(errf, "gpu-policy-controller render: %s\n", err.msg);
    return EXIT_INVALID;
  }
  return fflush(out) == 0 ? 0 : EXIT_INVALID;
}

int render_cmd_main(int argc, char **argv) {
  return render_cmd_main_io(argc, argv, stdout, stderr);
}
