#!/usr/bin/env python3
"""Writes a recorded watch stream of realistic GPU Node objects (figures input).

Usage: gen_nodes.py OUT.jsonl [COUNT=5000] [EVENT=ADDED]

Each line is {"type":EVENT,"object":<Node>} as the API server writes it
(compact JSON, one event a line). A node is ~15 KB like a real GPU node:
NFD and GFD labels, annotations, taints, five conditions, addresses,
nodeInfo, ~40 container images and a few managedFields entries. Output is
deterministic (fixed seed) so figures from different runs compare.
"""
import json
import random
import sys

GPU_PRODUCTS = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S", "NVIDIA-H200"]
CPU_FLAGS = ["ADX", "AESNI", "AVX", "AVX2", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512F", "AVX512VL",
             "AVX512VNNI", "BMI1", "BMI2", "CMPXCHG8", "FMA3", "FSRM", "FXSR", "GFNI", "HYPERVISOR",
             "LAHF", "MOVBE", "OSXSAVE", "SHA", "SSE4", "SSE42", "SYSCALL", "VAES", "VPCLMULQDQ",
             "X87", "XGETBV1", "XSAVE", "XSAVEC", "XSAVEOPT", "XSAVES"]
IMAGE_REPOS = ["nvcr.io/nvidia/driver", "nvcr.io/nvidia/k8s-device-plugin",
               "nvcr.io/nvidia/k8s/dcgm-exporter", "nvcr.io/nvidia/gpu-feature-discovery",
               "nvcr.io/nvidia/k8s/container-toolkit", "registry.k8s.io/nfd/node-feature-discovery",
               "registry.k8s.io/kube-proxy", "registry.k8s.io/pause", "docker.io/calico/node",
               "docker.io/calico/cni", "quay.io/prometheus/node-exporter", "docker.io/library/busybox",
               "nvcr.io/nvidia/pytorch", "nvcr.io/nvidia/tritonserver", "nvcr.io/nvidia/cuda",
               "quay.io/jetstack/cert-manager-controller", "docker.io/fluent/fluent-bit",
               "registry.k8s.io/csi-secrets-store/driver", "ghcr.io/kube-vip/kube-vip",
               "docker.io/grafana/promtail"]


def rhex(rnd, n):
    return "".join(rnd.choice("0123456789abcdef") for _ in range(n))


def labels(rnd, name, i):
    product = GPU_PRODUCTS[i % len(GPU_PRODUCTS)]
    lab = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "p5.48xlarge", "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": "us-east-1" + "abc"[i % 3],
        "feature.node.kubernetes.io/pci-10de.present": "true",
        "feature.node.kubernetes.io/pci-0302_10de.present": "true",
        "feature.node.kubernetes.io/kernel-version.full": "5.15.0-105-generic",
        "feature.node.kubernetes.io/kernel-version.major": "5",
        "feature.node.kubernetes.io/kernel-version.minor": "15",
        "feature.node.kubernetes.io/system-os_release.ID": "ubuntu",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID": "22.04",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        "feature.node.kubernetes.io/cpu-model.family": "6",
        "feature.node.kubernetes.io/memory-numa": "true",
        "feature.node.kubernetes.io/network-sriov.capable": "true",
        "nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": "8", "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.family": "hopper", "nvidia.com/gpu.machine": "p5.48xlarge",
        "nvidia.com/gpu.compute.major": "9", "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver.major": "550", "nvidia.com/cuda.driver.minor": "54",
        "nvidia.com/cuda.driver.rev": "15", "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "4", "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "single", "nvidia.com/gfd.timestamp": str(1714550000 + i),
        "gpupolicy.dev/policy": "default", "gpupolicy.dev/driver": "true",
        "gpupolicy.dev/device-plugin": "true",
    }
    for f in CPU_FLAGS:
        lab["feature.node.kubernetes.io/cpu-cpuid." + f] = "true"
    return lab


def node(rnd, i, rv):
    name = "gpu-%05d.ec2.internal" % i
    uid = "%s-%s-%s-%s-%s" % (rhex(rnd, 8), rhex(rnd, 4), rhex(rnd, 4), rhex(rnd, 4), rhex(rnd, 12))
    ts = "2024-05-01T10:%02d:%02dZ" % (i // 60 % 60, i % 60)
    images = []
    for k in range(40):
        repo = IMAGE_REPOS[k % len(IMAGE_REPOS)]
        tag = "v%d.%d.%d" % (k % 5, rnd.randrange(30), rnd.randrange(10))
        images.append({"names": ["%s@sha256:%s" % (repo, rhex(rnd, 64)), "%s:%s" % (repo, tag)],
                       "sizeBytes": rnd.randrange(5_000_000, 9_000_000_000)})
    conds = []
    for t, s, r, m in (("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                       ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                       ("Ready", "True" if i % 50 else "False", "KubeletReady", "kubelet is posting ready status"),
                       ("NetworkUnavailable", "False", "CalicoIsUp", "Calico is running on this node")):
        conds.append({"type": t, "status": s, "lastHeartbeatTime": ts, "lastTransitionTime": "2024-05-01T09:00:00Z",
                      "reason": r, "message": m})
    managed = [{"manager": mgr, "operation": "Update", "apiVersion": "v1", "time": ts, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:" + k: {} for k in list(labels(rnd, name, i))[:12]}}},
                **({"subresource": "status"} if mgr == "kubelet" else {})}
               for mgr in ("kubelet", "nfd-master", "gpu-feature-discovery")]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name, "uid": uid, "resourceVersion": str(rv), "creationTimestamp": "2024-05-01T09:00:00Z",
            "labels": labels(rnd, name, i),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "nfd.node.kubernetes.io/feature-labels": ",".join("cpu-cpuid." + f for f in CPU_FLAGS),
                "nfd.node.kubernetes.io/master.version": "v0.15.4",
                "projectcalico.org/IPv4Address": "10.0.%d.%d/19" % (i // 250, i % 250),
                "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": "i-" + rhex(rnd, 17)}),
            },
            "managedFields": managed,
        },
        "spec": {"podCIDR": "10.244.%d.0/24" % (i % 256), "podCIDRs": ["10.244.%d.0/24" % (i % 256)],
                 "providerID": "aws:///us-east-1a/i-" + rhex(rnd, 17),
                 "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "192", "ephemeral-storage": "1921208732Ki", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": "2097152000Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "allocatable": {"cpu": "191450m", "ephemeral-storage": "1770577798", "hugepages-1Gi": "0",
                            "hugepages-2Mi": "0", "memory": "2080000000Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": "10.0.%d.%d" % (i // 250, i % 250)},
                          {"type": "Hostname", "address": name},
                          {"type": "InternalDNS", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": rhex(rnd, 32), "systemUUID": rhex(rnd, 32), "bootID": rhex(rnd, 32),
                         "kernelVersion": "5.15.0-105-generic", "osImage": "Ubuntu 22.04.4 LTS",
                         "containerRuntimeVersion": "containerd://1.7.13", "kubeletVersion": "v1.29.4",
                         "kubeProxyVersion": "v1.29.4", "operatingSystem": "linux", "architecture": "amd64"},
            "images": images,
        },
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    event = sys.argv[3] if len(sys.argv) > 3 else "ADDED"
    rnd = random.Random(42)
    with open(out, "w") as f:
        for i in range(count):
            ev = {"type": event, "object": node(rnd, i, 100000 + i)}
            f.write(json.dumps(ev, separators=(",", ":")))
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
