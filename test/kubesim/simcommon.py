"""Names every part of kubesim's simulated cluster shares: the store's resource keys and the object helpers
that all of them use (one copy, so cluster.py, podsim.py, nodesim.py, controllers.py, kubelet.py,
simadmin.py and disruption.py agree)."""

NODES = "/v1/nodes"
PODS = "/v1/pods"
NAMESPACES = "/v1/namespaces"
DAEMONSETS = "apps/v1/daemonsets"
REVISIONS = "apps/v1/controllerrevisions"
RUNTIMECLASSES = "node.k8s.io/v1/runtimeclasses"
EVENTS = "/v1/events"
DEVICE_PLUGIN_COMPONENT = "device-plugin"
GPU_RESOURCE = "nvidia.com/gpu"
RECONCILE_INTERVAL = 0.05  # seconds between two passes over the same DaemonSet


def meta(obj):
    return obj.get("metadata") or {}


def controller_ref(m):
    """The controller ownerReference of an object's metadata, or None."""
    for ref in m.get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def is_device_plugin(labels):
    """The labels a device plugin pod carries: ours (component/name device-plugin) or NVIDIA's chart's."""
    if DEVICE_PLUGIN_COMPONENT in (labels.get("app.kubernetes.io/component"), labels.get("app.kubernetes.io/name")):
        return True
    return any((labels.get(k) or "").startswith("nvidia-device-plugin")
               for k in ("name", "app", "app.kubernetes.io/name"))
