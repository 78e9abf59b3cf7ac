/* allocpod.h — the allocation check: a one-shot pod that asks for one GPU.
 *
 * The validator itself sees every GPU (NVIDIA_VISIBLE_DEVICES=all); no pod of
 * it ever *requests* nvidia.com/gpu. This check does what the manual
 * procedure ends with: it creates, in its own namespace, a Pod bound to its
 * node (spec.nodeName) that runs `gpu-policy-validator --json` with
 * `limits: {nvidia.com/gpu: 1}` and no NVIDIA_VISIBLE_DEVICES of its own, so
 * the kubelet's device manager must admit it and the device plugin must
 * inject the one GPU it allocates. Image, runtimeClassName, tolerations and
 * both securityContexts are copied from the validator's own Pod (read
 * through the API), so whatever a policy sets for the validator holds for
 * the one-shot pod too; an ownerReference to that Pod lets the garbage
 * collector remove it should the validator die mid-check.
 *
 * Pure parts (tested without a server): the pod's name, the manifest, what
 * is copied from the validator's Pod, and how a pod's status reads.
 * allocpod_check() and allocpod_delete() do the API calls.
 */
#ifndef GPC_VALIDATOR_ALLOCPOD_H
#define GPC_VALIDATOR_ALLOCPOD_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"
#include "report.h"

#define ALLOCPOD_PREFIX "gpu-policy-alloc-"
#define ALLOCPOD_CONTAINER "vectoradd"
#define ALLOCPOD_NAME_MAX 63

/* What the one-shot pod copies from the validator's own Pod. */
struct allocpod_self {
  char *uid;
  char *image;
  char *runtime_class;        /* NULL when the validator has none */
  json_t *tolerations;        /* NULL or an array */
  json_t *pod_security;       /* NULL or spec.securityContext */
  json_t *container_security; /* NULL or the container's securityContext */
};

/* "gpu-policy-alloc-<node>", at most ALLOCPOD_NAME_MAX characters: a longer
 * one keeps the first characters and ends in "-" and 8 hex digits of a hash of
 * the node name, so it stays unique and a valid DNS label. `len` >= 64. */
void allocpod_name(const char *node, char *buf, size_t len);

/* From the validator's Pod JSON: its uid, and of container `container` (or
 * the first one when NULL or absent) the image and securityContext, plus the
 * pod's runtimeClassName, tolerations and securityContext. */
int allocpod_self_from_pod(const char *body, size_t len, const char *container,
                           struct allocpod_self *s, struct gpc_error *err);
/* Frees what allocpod_self_from_pod stored in *s and zeroes it (the struct
 * is the caller's). */
void allocpod_self_release(struct allocpod_self *s);

/* The one-shot Pod (new reference). `owner` is the validator Pod's name. */
json_t *allocpod_manifest(const char *name, const char *ns, const char *node, const char *owner,
                          const struct allocpod_self *s);

enum allocpod_state {
  ALLOCPOD_WAITING,   /* not terminal yet; detail says what it waits on */
  ALLOCPOD_SUCCEEDED, /* vectorAdd passed in the pod */
  ALLOCPOD_FAILED,    /* the container ran and failed; exit_code, detail = its message */
  ALLOCPOD_REJECTED,  /* the kubelet refused or ended the pod: detail = "<reason>: <message>" */
};

struct allocpod_result {
  enum allocpod_state state;
  int exit_code; /* the container's, -1 when unknown */
  char detail[768];
};

/* Reads a Pod's status. GPC_E_INVAL when the body is not a Pod. */
int allocpod_interpret(const char *body, size_t len, struct allocpod_result *res,
                       struct gpc_error *err);

struct allocpod_opts {
  const char *kubeconfig; /* NULL: in-cluster, else the default file */
  const char *ns;         /* the validator's namespace */
  const char *self;       /* the validator's Pod name */
  const char *node;
  long api_timeout_ms;
  double wait_s; /* how long the pod may take to end */
};

/* In a check process: runs the whole check into `r` (check "allocation";
 * VAL_ALLOCATION on failure). The pod is deleted before returning, whatever
 * happened. */
void allocpod_check(const struct allocpod_opts *o, struct val_report *r);
/* Deletes the node's one-shot pod (gone already is fine): the parent's
 * clean-up after a check process was killed or stopped. */
int allocpod_delete(const struct allocpod_opts *o, struct gpc_error *err);

#endif
