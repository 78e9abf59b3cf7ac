"""Fleet generation for kubesim: Node objects that look like a real GPU cluster's.

Pure functions, no store access. A node built here is about 15 KB of JSON, the
size a real NFD + GFD labelled GPU node has once managedFields are stripped, so
LIST/WATCH benchmarks against kubesim move realistic byte counts.

GPU nodes carry NFD's PCI label for vendor 10de and GFD-style nvidia.com/gpu.*
labels; CPU nodes carry neither. No node advertises nvidia.com/gpu in
capacity/allocatable: that appears only once a device-plugin pod is Ready on
the node (cluster.py simulates that effect).
"""

import hashlib
import uuid

import host

KUBELET_VERSION = "v1.30.4"
GPU_PRODUCTS = {
    # product label -> (memory MiB, family, compute major, compute minor, instance type)
    "NVIDIA-H100-80GB-HBM3": (81559, "hopper", 9, 0, "p5.48xlarge"),
    "NVIDIA-A100-SXM4-80GB": (81920, "ampere", 8, 0, "p4de.24xlarge"),
    "NVIDIA-L40S": (46068, "ada-lovelace", 8, 9, "g6e.48xlarge"),
    "Tesla-T4": (15360, "turing", 7, 5, "g4dn.12xlarge"),
}
DEFAULT_GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")

# CPU feature flags NFD publishes as feature.node.kubernetes.io/cpu-cpuid.<FLAG>=true.
_CPUID_FLAGS = (
    "ADX AESNI AMXBF16 AMXINT8 AMXTILE AVX AVX2 AVX512BF16 AVX512BITALG AVX512BW AVX512CD AVX512DQ "
    "AVX512F AVX512FP16 AVX512IFMA AVX512VBMI AVX512VBMI2 AVX512VL AVX512VNNI AVX512VPOPCNTDQ AVXVNNI "
    "CETIBT CETSS CLDEMOTE CMPXCHG8 FMA3 FSRM FXSR FXSROPT GFNI HYPERVISOR IBPB LAHF MOVBE MOVDIR64B "
    "MOVDIRI OSXSAVE SERIALIZE SHA SPEC_CTRL_SSBD STIBP SYSCALL SYSEE TSXLDTRK VAES VMX VPCLMULQDQ "
    "WAITPKG X87 XGETBV1 XSAVE XSAVEC XSAVEOPT XSAVES"
).split()

# (image names, size in bytes) a GPU worker's kubelet typically reports; kubelet caps the list at 50.
_IMAGES = (
    (["nvcr.io/nvidia/driver@sha256:6f1c0e3a", "nvcr.io/nvidia/driver:550.90.07-ubuntu22.04"], 1219462371),
    (["nvcr.io/nvidia/cuda@sha256:0f2d6c8b", "nvcr.io/nvidia/cuda:12.4.1-base-ubi8"], 243174955),
    (["nvcr.io/nvidia/k8s-device-plugin@sha256:7089559c", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2"], 139624551),
    (["nvcr.io/nvidia/k8s/container-toolkit@sha256:b6a5a9c2", "nvcr.io/nvidia/k8s/container-toolkit:v1.16.2-ubuntu20.04"], 131478901),
    (["nvcr.io/nvidia/k8s/dcgm-exporter@sha256:98781424", "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.7-3.5.0-ubuntu22.04"], 347391452),
    (["nvcr.io/nvidia/cloud-native/gpu-operator-validator@sha256:70a0bd29", "nvcr.io/nvidia/cloud-native/gpu-operator-validator:v24.6.2"], 166829071),
    (["nvcr.io/nvidia/cloud-native/k8s-driver-manager@sha256:3d4b8f1e", "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.6.10"], 229734410),
    (["nvcr.io/nvidia/k8s/dcgm@sha256:2c1e1f3a", "nvcr.io/nvidia/k8s/dcgm:3.3.7-1-ubuntu22.04"], 582190131),
    (["nvcr.io/nvidia/gpu-feature-discovery@sha256:8a8d3f9c", "nvcr.io/nvidia/gpu-feature-discovery:v0.8.2-ubi8"], 91281466),
    (["nvcr.io/nvidia/cloud-native/k8s-mig-manager@sha256:9b1d2d5a", "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.8.0-ubuntu20.04"], 187201354),
    (["nvcr.io/nvidia/cloud-native/nvidia-fs@sha256:1f3c9e2b", "nvcr.io/nvidia/cloud-native/nvidia-fs:2.17.5"], 64120930),
    (["nvcr.io/nvidia/cloud-native/vgpu-device-manager@sha256:4e2a7b1c", "nvcr.io/nvidia/cloud-native/vgpu-device-manager:v0.2.7"], 78211043),
    (["registry.k8s.io/nfd/node-feature-discovery@sha256:7aa3b1f2", "registry.k8s.io/nfd/node-feature-discovery:v0.16.3"], 74561322),
    (["registry.k8s.io/kube-proxy@sha256:8b6c2d4e", "registry.k8s.io/kube-proxy:v1.30.4"], 29034612),
    (["registry.k8s.io/pause@sha256:7031c1b2", "registry.k8s.io/pause:3.9"], 321520),
    (["registry.k8s.io/coredns/coredns@sha256:a0ead06b", "registry.k8s.io/coredns/coredns:v1.11.1"], 18182961),
    (["registry.k8s.io/metrics-server/metrics-server@sha256:ffcb2bf0", "registry.k8s.io/metrics-server/metrics-server:v0.7.1"], 19435919),
    (["registry.k8s.io/sig-storage/csi-node-driver-registrar@sha256:f25af73e", "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.1"], 10717356),
    (["registry.k8s.io/sig-storage/livenessprobe@sha256:2b10b24d", "registry.k8s.io/sig-storage/livenessprobe:v2.12.0"], 10157342),
    (["registry.k8s.io/provider-aws/aws-ebs-csi-driver@sha256:cfc1a5d8", "registry.k8s.io/provider-aws/aws-ebs-csi-driver:v1.31.0"], 34781274),
    (["docker.io/calico/node@sha256:5e3fa7ff", "docker.io/calico/node:v3.27.3"], 115473113),
    (["docker.io/calico/cni@sha256:2d9bc36a", "docker.io/calico/cni:v3.27.3"], 94571242),
    (["docker.io/calico/pod2daemon-flexvol@sha256:9a8b1a3c", "docker.io/calico/pod2daemon-flexvol:v3.27.3"], 7176571),
    (["docker.io/calico/csi@sha256:8c1c5a73", "docker.io/calico/csi:v3.27.3"], 8900411),
    (["docker.io/calico/node-driver-registrar@sha256:61ab8ec2", "docker.io/calico/node-driver-registrar:v3.27.3"], 11210843),
    (["quay.io/prometheus/node-exporter@sha256:4032c6d5", "quay.io/prometheus/node-exporter:v1.8.1"], 11728830),
    (["quay.io/prometheus-operator/prometheus-config-reloader@sha256:8a9d1c2e", "quay.io/prometheus-operator/prometheus-config-reloader:v0.74.0"], 14361440),
    (["docker.io/fluent/fluent-bit@sha256:1a2b3c4d", "docker.io/fluent/fluent-bit:3.0.7"], 35432109),
    (["docker.io/grafana/promtail@sha256:4d5e6f7a", "docker.io/grafana/promtail:3.0.0"], 80218734),
    (["quay.io/cilium/cilium-envoy@sha256:9b8c7d6e", "quay.io/cilium/cilium-envoy:v1.29.7"], 59218110),
    (["public.ecr.aws/eks/aws-load-balancer-controller@sha256:0e1f2a3b", "public.ecr.aws/eks/aws-load-balancer-controller:v2.8.1"], 43215876),
    (["public.ecr.aws/aws-ec2/aws-node-termination-handler@sha256:5c6d7e8f", "public.ecr.aws/aws-ec2/aws-node-termination-handler:v1.22.0"], 24516398),
    (["docker.io/library/busybox@sha256:9ae97d36", "docker.io/library/busybox:1.36"], 2160406),
    (["docker.io/library/ubuntu@sha256:2e863c44", "docker.io/library/ubuntu:22.04"], 29533422),
    (["nvcr.io/nvidia/pytorch@sha256:c5e1d0a2", "nvcr.io/nvidia/pytorch:24.07-py3"], 10235867312),
    (["nvcr.io/nvidia/tritonserver@sha256:1d2c3b4a", "nvcr.io/nvidia/tritonserver:24.07-py3"], 7314528106),
    (["nvcr.io/nvidia/nemo@sha256:6a7b8c9d", "nvcr.io/nvidia/nemo:24.05"], 15732994811),
    (["nvcr.io/nvidia/k8s/cuda-sample@sha256:0a1b2c3d", "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"], 128402713),
    (["docker.io/rayproject/ray@sha256:4e5f6a7b", "docker.io/rayproject/ray:2.32.0-py310-gpu"], 6918233021),
    (["registry.k8s.io/kube-state-metrics/kube-state-metrics@sha256:8c9d0e1f", "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.12.0"], 16371245),
)


def _node_hex(name, salt, n=32):
    """Stable pseudo-random hex for a node: the same name gives the same IDs across restarts."""
    return hashlib.sha256((salt + ":" + name).encode()).hexdigest()[:n]


def _node_uuid(name, salt):
    return str(uuid.UUID(_node_hex(name, salt)))


def _nfd_labels(kernel_full, gpu):
    labels = {"feature.node.kubernetes.io/cpu-cpuid.%s" % f: "true" for f in _CPUID_FLAGS}
    labels.update({
        "feature.node.kubernetes.io/cpu-cstate.enabled": "true",
        "feature.node.kubernetes.io/cpu-hardware_multithreading": "true",
        "feature.node.kubernetes.io/cpu-model.family": "6",
        "feature.node.kubernetes.io/cpu-model.id": "143",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        "feature.node.kubernetes.io/cpu-pstate.status": "active",
        "feature.node.kubernetes.io/cpu-pstate.turbo": "true",
        "feature.node.kubernetes.io/cpu-rdt.RDTCMT": "true",
        "feature.node.kubernetes.io/cpu-rdt.RDTL3CA": "true",
        "feature.node.kubernetes.io/cpu-rdt.RDTMBA": "true",
        "feature.node.kubernetes.io/cpu-rdt.RDTMBM": "true",
        "feature.node.kubernetes.io/kernel-config.NO_HZ": "true",
        "feature.node.kubernetes.io/kernel-config.NO_HZ_IDLE": "true",
        "feature.node.kubernetes.io/kernel-version.full": kernel_full,
        "feature.node.kubernetes.io/kernel-version.major": kernel_full.split(".")[0],
        "feature.node.kubernetes.io/kernel-version.minor": kernel_full.split(".")[1],
        "feature.node.kubernetes.io/kernel-version.revision": kernel_full.split(".")[2].split("-")[0],
        "feature.node.kubernetes.io/memory-numa": "true",
        "feature.node.kubernetes.io/pci-1d0f.present": "true",
        "feature.node.kubernetes.io/storage-nonrotationaldisk": "true",
        "feature.node.kubernetes.io/system-os_release.ID": "ubuntu",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID": "22.04",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID.major": "22",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID.minor": "04",
    })
    if gpu:
        labels["feature.node.kubernetes.io/pci-10de.present"] = "true"
        labels["feature.node.kubernetes.io/pci-10de.sriov.capable"] = "true"
        labels["feature.node.kubernetes.io/pci-15b3.present"] = "true"
        labels["feature.node.kubernetes.io/rdma.available"] = "true"
        labels["feature.node.kubernetes.io/rdma.capable"] = "true"
    return labels


def _gfd_labels(product, gpus):
    mem, family, cmaj, cmin, _ = GPU_PRODUCTS.get(product, GPU_PRODUCTS[DEFAULT_GPU_PRODUCT])
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(mem),
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.family": family,
        "nvidia.com/gpu.compute.major": str(cmaj),
        "nvidia.com/gpu.compute.minor": str(cmin),
        "nvidia.com/gpu.machine": GPU_PRODUCTS.get(product, GPU_PRODUCTS[DEFAULT_GPU_PRODUCT])[4],
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "true" if family in ("hopper", "ampere") else "false",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/cuda.driver-version.full": "550.90.07",
        "nvidia.com/cuda.driver-version.major": "550",
        "nvidia.com/cuda.driver-version.minor": "90",
        "nvidia.com/cuda.driver-version.revision": "07",
        "nvidia.com/cuda.runtime-version.full": "12.4",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "4",
    }


def build_node(name, index, gpu, gpus=0, product=DEFAULT_GPU_PRODUCT, created="", labels=None,
               taints=None, facts=None):
    """Return a Node dict (without uid/resourceVersion: the store assigns those).

    name: node name; index: position in the fleet (drives zone and IP); gpu: whether it has NVIDIA
    GPUs; gpus: how many; labels: extra labels merged last; taints: spec.taints (default none).
    created: RFC3339 time for condition timestamps. facts: the host's runtime and OS (host.py; default
    containerd on Ubuntu 22.04): nodeInfo.containerRuntimeVersion/osImage/kernelVersion and NFD's
    system-os_release labels follow them.
    """
    info, host_labels = host.node_facts_fields(facts or {})
    kernel = info["kernelVersion"]
    zone = ZONES[index % len(ZONES)]
    ip = "10.%d.%d.%d" % (gpu and 1 or 2, (index // 250) % 250, index % 250 + 2)
    instance = GPU_PRODUCTS.get(product, GPU_PRODUCTS[DEFAULT_GPU_PRODUCT])[4] if gpu else "m7i.8xlarge"
    node_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/instance-type": instance,
        "failure-domain.beta.kubernetes.io/region": "us-east-1",
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": instance,
        "node-role.kubernetes.io/worker": "",
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": zone,
        "topology.ebs.csi.aws.com/zone": zone,
        "k8s.io/cloud-provider-aws": _node_hex(name, "cp", 32),
    }
    node_labels.update(_nfd_labels(kernel, gpu))
    node_labels.update(host_labels)
    if gpu:
        node_labels.update(_gfd_labels(product, gpus))
    if labels:
        node_labels.update(labels)
    nfd_keys = sorted(k[len("feature.node.kubernetes.io/"):] for k in node_labels
                      if k.startswith("feature.node.kubernetes.io/"))
    annotations = {
        "alpha.kubernetes.io/provided-node-ip": ip,
        "csi.volume.kubernetes.io/nodeid": '{"ebs.csi.aws.com":"i-%s"}' % _node_hex(name, "i", 17),
        "nfd.node.kubernetes.io/feature-labels": ",".join(nfd_keys),
        "nfd.node.kubernetes.io/master.version": "v0.16.3",
        "nfd.node.kubernetes.io/worker.version": "v0.16.3",
        "node.alpha.kubernetes.io/ttl": "0",
        "projectcalico.org/IPv4Address": ip + "/19",
        "projectcalico.org/IPv4VXLANTunnelAddr": "192.168.%d.%d" % (index // 250 % 250, index % 250 + 1),
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    cpu, mem_ki = ("192", "2097152000Ki") if gpu else ("32", "131072000Ki")
    alloc_cpu, alloc_mem = ("191450m", "2086666240Ki") if gpu else ("31750m", "128926720Ki")
    cond = []
    for ctype, reason, msg in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "KubeletReady", "kubelet is posting ready status")):
        cond.append({"type": ctype, "status": "True" if ctype == "Ready" else "False",
                     "lastHeartbeatTime": created, "lastTransitionTime": created,
                     "reason": reason, "message": msg})
    images = [{"names": list(names), "sizeBytes": size} for names, size in _IMAGES]
    if not gpu:
        images = [i for i in images if not i["names"][0].startswith("nvcr.io")]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
        "spec": {
            "podCIDR": "192.168.%d.0/24" % (index % 250),
            "podCIDRs": ["192.168.%d.0/24" % (index % 250)],
            "providerID": "aws:///%s/i-%s" % (zone, _node_hex(name, "i", 17)),
            **({"taints": list(taints)} if taints else {}),
        },
        "status": {
            "capacity": {"cpu": cpu, "ephemeral-storage": "1921208732Ki", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": mem_ki, "pods": "110"},
            "allocatable": {"cpu": alloc_cpu, "ephemeral-storage": "1770577798", "hugepages-1Gi": "0",
                            "hugepages-2Mi": "0", "memory": alloc_mem, "pods": "110"},
            "conditions": cond,
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "InternalDNS", "address": "ip-%s.ec2.internal" % ip.replace(".", "-")},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _node_hex(name, "machine"),
                "systemUUID": _node_uuid(name, "system"),
                "bootID": _node_uuid(name, "boot"),
                "kernelVersion": kernel,
                "osImage": info["osImage"],
                "containerRuntimeVersion": info["containerRuntimeVersion"],
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": images,
            "runtimeHandlers": [{"name": "runc", "features": {"recursiveReadOnlyMounts": True}},
                                {"name": "", "features": {"recursiveReadOnlyMounts": True}}],
            "config": {},
        },
    }


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
