/* gpu_labels.h — the node labels that say "this is a GPU node" (design.md §4).
 *
 * The one home of the default GPU detection keys: plan.c matches nodes on
 * them (a policy with an empty nodeSelector), and the controller's node
 * projections always keep them (watch_map.c). Used as array initialisers.
 */
#ifndef GPC_GPU_LABELS_H
#define GPC_GPU_LABELS_H

/* NFD's PCI vendor labels for NVIDIA (10de) and the label GPU Feature
 * Discovery / gpu-operator set: a match when the value is "true". */
#define GPC_GPU_PRESENT_LABELS                                                                     \
  "feature.node.kubernetes.io/pci-10de.present",                                                   \
      "feature.node.kubernetes.io/pci-0302_10de.present",                                          \
      "feature.node.kubernetes.io/pci-0300_10de.present", "nvidia.com/gpu.present"

/* Managed clouds label their GPU nodes with the accelerator: GKE
 * "nvidia-tesla-t4", "nvidia-l4", ...; AKS "nvidia"; EKS "nvidia-tesla-v100",
 * ... A value naming NVIDIA (prefix "nvidia") is a match. */
#define GPC_GPU_CLOUD_LABELS                                                                       \
  "cloud.google.com/gke-accelerator", "kubernetes.azure.com/accelerator",                          \
      "k8s.amazonaws.com/accelerator"

#endif
