"""GPU host state of kubesim's nodes and the host contract of each operand image (pure, no store access).

A simulated GPU node is a host: facts it was built with (container runtime, OS, kernel, GPUs, whether the
host carries its own driver and/or its own configured NVIDIA runtime) and state the operands change (NVIDIA
kernel modules and who holds the GPUs open, where the driver's files are, the runtime's `nvidia` handler,
files under /run/nvidia/validations, /dev/char links, the device plugin socket).

Every rule below is taken from the operand images' own code and cited in docs/kubesim.md ("GPU hosts") and
docs/operands.md; the citation is repeated next to each rule (file and function of the NVIDIA repository).
cluster.py calls in through four hooks: contract() before a container starts (or is restarted), started()
once it runs, stopped() when the pod is gone, reboot().
"""

import re
import uuid

# node facts ------------------------------------------------------------------------------------------------
RUNTIME_VERSIONS = {"containerd": "containerd://1.7.19", "cri-o": "cri-o://1.30.4", "docker": "docker://26.1.4"}
# OS key (the driver image's tag suffix) -> (os_release ID, VERSION_ID, osImage, kernelVersion)
OSES = {
    "ubuntu22.04": ("ubuntu", "22.04", "Ubuntu 22.04.4 LTS", "5.15.0-1063-aws"),
    "ubuntu20.04": ("ubuntu", "20.04", "Ubuntu 20.04.6 LTS", "5.15.0-1064-aws"),
    "ubuntu24.04": ("ubuntu", "24.04", "Ubuntu 24.04 LTS", "6.8.0-1015-aws"),
    "rhel9.4": ("rhel", "9.4", "Red Hat Enterprise Linux 9.4 (Plow)", "5.14.0-427.37.1.el9_4.x86_64"),
    "rhel8.10": ("rhel", "8.10", "Red Hat Enterprise Linux 8.10 (Ootpa)", "4.18.0-553.16.1.el8_10.x86_64"),
}
DEFAULT_RUNTIME, DEFAULT_OS = "containerd", "ubuntu22.04"
# the name nvidia-ctk-installer takes for each runtime (RUNTIME=containerd|crio|docker)
CTK_NAME = {"containerd": "containerd", "cri-o": "crio", "docker": "docker"}
# where each runtime listens (nvidia-container-toolkit tools/container/{containerd,docker,crio}: defaultSocket)
SOCKETS = {"containerd": "/run/containerd/containerd.sock", "docker": "/run/docker.sock",
           "cri-o": "/run/crio/crio.sock"}
CONFIG_DIRS = {"containerd": "/etc/containerd", "docker": "/etc/docker", "cri-o": "/etc/crio"}
CRIO_HOOKS_DIR = "/usr/share/containers/oci/hooks.d"  # tools/container/crio/crio.go defaultHooksDir
RUN_DRIVER_ROOT = "/run/nvidia/driver"  # gpu-driver-container nvidia-driver: RUN_DIR/driver (_mount_rootfs)
VALIDATIONS = "/run/nvidia/validations"
PLUGIN_DIR = "/var/lib/kubelet/device-plugins"

FACT_KEYS = ("runtime", "os", "hostDriver", "hostToolkit")


def parse_fleet(spec):
    """--fleet "containerd/ubuntu22.04:2,cri-o/rhel9.4,docker/ubuntu20.04,containerd/ubuntu22.04/host-driver"
    -> [facts dict, ...] (one per node). Each entry is runtime/os[/host-driver][/host-toolkit[-default]][:count]
    (host-toolkit-default: the host's nvidia runtime is also the runtime's default)."""
    out = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        count = 1
        if ":" in item:
            item, n = item.rsplit(":", 1)
            count = int(n)
        parts = item.split("/")
        tk = "default" if "host-toolkit-default" in parts[2:] else "host-toolkit" in parts[2:]
        facts = {"runtime": parts[0], "os": parts[1] if len(parts) > 1 else DEFAULT_OS,
                 "hostDriver": "host-driver" in parts[2:], "hostToolkit": tk}
        check_facts(facts)
        out.extend(dict(facts) for _ in range(count))
    return out


def check_facts(facts):
    if facts.get("runtime", DEFAULT_RUNTIME) not in RUNTIME_VERSIONS:
        raise ValueError("runtime must be one of %s" % ", ".join(sorted(RUNTIME_VERSIONS)))
    if facts.get("os", DEFAULT_OS) not in OSES:
        raise ValueError("os must be one of %s" % ", ".join(sorted(OSES)))
    if facts.get("hostToolkit") and not facts.get("hostDriver"):
        raise ValueError("hostToolkit needs hostDriver (nvidia-ctk configures a runtime for a host driver)")


def node_facts_fields(facts):
    """(nodeInfo fields, NFD labels) for facts; merged into the Node by fleet.build_node."""
    rt, osk = facts.get("runtime", DEFAULT_RUNTIME), facts.get("os", DEFAULT_OS)
    os_id, ver, image, kernel = OSES[osk]
    info = {"containerRuntimeVersion": RUNTIME_VERSIONS[rt], "osImage": image, "kernelVersion": kernel}
    labels = {"feature.node.kubernetes.io/system-os_release.ID": os_id,
              "feature.node.kubernetes.io/system-os_release.VERSION_ID": ver,
              "feature.node.kubernetes.io/system-os_release.VERSION_ID.major": ver.split(".")[0],
              "feature.node.kubernetes.io/system-os_release.VERSION_ID.minor": ver.split(".")[1],
              "feature.node.kubernetes.io/kernel-version.full": kernel}
    return info, labels


def runtime_of(node_obj):
    v = ((node_obj.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or ""
    name = v.split("://", 1)[0]
    return name if name in RUNTIME_VERSIONS else DEFAULT_RUNTIME


def os_of(node_obj):
    labels = (node_obj.get("metadata") or {}).get("labels") or {}
    key = (labels.get("feature.node.kubernetes.io/system-os_release.ID", "")
           + labels.get("feature.node.kubernetes.io/system-os_release.VERSION_ID", ""))
    return key if key in OSES else DEFAULT_OS


# pod helpers -------------------------------------------------------------------------------------------------
def _env(ctr):
    """Literal env values of a container (valueFrom entries are not literal and are skipped)."""
    return {e.get("name"): e.get("value") for e in ctr.get("env") or () if "value" in e}


def _image_repo(image):
    image = (image or "").split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0]


def operand_of(ctr):
    """Which operand image a container runs, from its image (or, for ours, its command)."""
    repo = _image_repo(ctr.get("image"))
    for suffix, op in (("/driver", "driver"), ("/container-toolkit", "container-toolkit"),
                       ("/k8s-device-plugin", "device-plugin"), ("/dcgm-exporter", "dcgm-exporter")):
        if repo.endswith(suffix):
            return op
    if "gpu-policy-validator" in (ctr.get("command") or [""])[:1]:
        return "validator"
    return None


def image_os(image):
    """The OS suffix of a driver image tag (550.54.14-ubuntu22.04 -> ubuntu22.04), or None."""
    tag = (image or "").split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    m = re.search(r"-((?:ubuntu|rhel|rocky|centos|sles|amzn|debian)[0-9.]+)$", tag)
    return m.group(1) if m else None


def host_path(pod_spec, ctr, path):
    """(host path, mount) that container path `path` resolves to through the container's hostPath
    mounts (longest mountPath prefix), or (None, mount) when it is in the container's own filesystem or
    in a non-hostPath volume."""
    vols = {v.get("name"): v for v in pod_spec.get("volumes") or ()}
    best = None
    for m in ctr.get("volumeMounts") or ():
        mp = (m.get("mountPath") or "").rstrip("/") or "/"
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, m)
    if best is None:
        return None, None
    mp, m = best
    hp = ((vols.get(m.get("name")) or {}).get("hostPath") or {}).get("path")
    if hp is None:
        return None, m
    rest = path[len(mp):] if mp != "/" else path
    return _norm(hp.rstrip("/") + rest if rest else hp), m


def _norm(p):
    p = re.sub(r"/+", "/", p or "/")
    if p.startswith("/var/run/") or p == "/var/run":
        p = p[4:]  # /var/run is a symlink to /run on every distribution we simulate
    return p.rstrip("/") or "/"


def _commands(ctr):
    """Shell text of a container's command and args, and of its probes' and lifecycle hooks' exec commands."""
    main = " ".join((ctr.get("command") or []) + (ctr.get("args") or []))
    probes = []
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        probes.append(" ".join(((ctr.get(key) or {}).get("exec") or {}).get("command") or []))
    return main, " ".join(probes)


def wants_gpus(ctr):
    """A container the NVIDIA runtime/hook gives GPUs to: NVIDIA_VISIBLE_DEVICES set to devices (not
    void/none), or a nvidia.com/gpu limit (the device plugin sets the variable then)."""
    v = _env(ctr).get("NVIDIA_VISIBLE_DEVICES")
    lim = ((ctr.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu")
    return (v is not None and v not in ("", "void", "none")) or bool(lim)


def fail(message, reason="CrashLoopBackOff", exit_code=1, **kw):
    r = {"reason": reason, "message": None, "terminationMessage": message, "exitCode": exit_code, "host": True}
    r.update(kw)
    return r


class Host:
    """One GPU node's host: facts and the state the operands change."""

    def __init__(self, name, facts, gpus):
        self.name = name
        self.runtime = facts.get("runtime", DEFAULT_RUNTIME)
        self.os = facts.get("os", DEFAULT_OS)
        self.host_driver = bool(facts.get("hostDriver"))
        self.host_toolkit = facts.get("hostToolkit") or False  # True, or "default": nvidia is the default
        self.gpus = gpus
        self.boot_id = str(uuid.uuid4())
        self.boots = 1
        self._boot()

    def _boot(self):
        """State right after the host boots: /run (tmpfs) empty; the host's own driver loaded, if any."""
        self.modules = "host" if self.host_driver and self.gpus else None  # None | "host" | driver pod uid
        self.driver_root = "/" if self.modules == "host" else None  # host path holding the driver files
        self.holders = set()  # pod uids holding /dev/nvidia* open
        self.validations = set()  # files under /run/nvidia/validations
        self.dev_char = False
        self.plugin_socket = False
        self.driver_pid = None  # pod holding /run/nvidia/nvidia-driver.pid (flock)
        self.driver_state = None  # /run/nvidia/nvidia-driver.state: the digest that loaded the modules
        self.toolkit_pod = None
        self.cdi_spec = False  # /var/run/cdi is tmpfs too
        self.on_stop = {}  # pod uid -> validation files its preStop hook removes
        if not hasattr(self, "toolkit_installed"):
            self.toolkit_installed = False  # /usr/local/nvidia is on disk: survives reboots
        if not hasattr(self, "handlers"):
            # runtime configuration lives on disk (/etc/...): it survives reboots
            self.handlers = set()  # CRI runtime handlers beyond the defaults
            self.default = "runc"  # the runtime's default low-level runtime
            self.crio_hook = False
            self.ctk_driver_root = None  # NVIDIA_DRIVER_ROOT the configured runtime uses
            if self.host_toolkit:
                self._host_toolkit()

    def _host_toolkit(self):
        """The host's own nvidia-container-toolkit: on cri-o its package's OCI hook; elsewhere
        `nvidia-ctk runtime configure --runtime=X` (cmd/nvidia-ctk/runtime/configure: --set-as-default
        defaults to false) adds the `nvidia` handler but leaves the default runtime alone."""
        self.ctk_driver_root = "/"
        if self.runtime == "cri-o":
            self.crio_hook = True
        elif self.runtime == "docker" or self.host_toolkit == "default":
            # `--set-as-default` (the device plugin's quick start; docker has no handlers to name)
            self.handlers.add("nvidia")
            self.default = "nvidia"
        else:
            self.handlers.add("nvidia")

    # -- the runtime ---------------------------------------------------------------------------------------
    def cri_handlers(self):
        if self.runtime == "docker":
            # cri-dockerd (before its 2024 handler support) serves only the default handler: any
            # runtimeClassName fails with `RuntimeHandler "X" not supported` (gpu-operator issue #236)
            return {""}
        base = {"", "runc"} | ({"crun"} if self.runtime == "cri-o" else set())
        return base | self.handlers

    def sandbox_error(self, handler):
        if handler in self.cri_handlers():
            return None
        if self.runtime == "containerd":
            return 'failed to get sandbox runtime: no runtime for "%s" is configured' % handler
        if self.runtime == "cri-o":
            return "failed to find runtime handler %s from runtime list" % handler
        return 'RuntimeHandler "%s" not supported' % handler

    def nvidia_runtime_for(self, handler):
        """Whether a container created with this CRI handler runs under nvidia-container-runtime (or, on
        CRI-O in hook mode, gets the NVIDIA prestart hook, which is installed with when.always=true:
        pkg/config/ocihook/oci-hook.go)."""
        if self.runtime == "cri-o" and self.crio_hook:
            return True
        if handler in ("", None):
            return self.default == "nvidia"
        return handler == "nvidia" and "nvidia" in self.handlers

    def gpu_injection_error(self, handler, ctr):
        """None when the container gets the GPUs it asks for, else what the runtime/plugin reports."""
        if not self.nvidia_runtime_for(handler):
            return "no-runtime"
        root = self.ctk_driver_root
        if not self.modules or root is None or not self._driver_at(root):
            # nvidia-container-runtime-hook -> nvidia-container-cli --root=<driver root>
            return ("failed to create containerd task: OCI runtime create failed: error running hook #0: "
                    "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: "
                    "cannot open shared object file: no such file or directory")
        return None

    def _driver_at(self, hp):
        return self.driver_root is not None and _norm(hp) == self.driver_root

    # -- contracts -----------------------------------------------------------------------------------------
    def contract(self, pod, handler):
        """None when the pod's containers can start on this host now, else a failure rule for the kubelet:
        {"hostSandbox": True, "message"} (pod stays ContainerCreating), {"wait": True, "message"} (an init
        container is still waiting), or a crash-loop rule (reason, terminationMessage, exitCode)."""
        spec = pod.get("spec") or {}
        if spec.get("runtimeClassName"):
            err = self.sandbox_error(handler)
            if err:
                return {"hostSandbox": True, "host": True, "reason": "ContainerCreating",
                        "message": "Failed to create pod sandbox: rpc error: code = Unknown desc = " + err}
        done = [((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
                for c in (pod.get("status") or {}).get("initContainerStatuses") or ()]
        inits_done = bool(done) and all(done)  # a container restart does not run them again
        for ctr in () if inits_done else spec.get("initContainers") or ():
            r = self._init_container(spec, ctr)
            if r:
                return r
        for ctr in spec.get("containers") or ():
            op = operand_of(ctr)
            r = None
            if op == "driver":
                r = self._driver(pod, spec, ctr)
            elif op == "container-toolkit":
                r = self._toolkit(pod, spec, ctr)
            elif op in ("device-plugin", "validator"):
                r = self._gpu_user(spec, ctr, handler, op)
            elif wants_gpus(ctr) and self.nvidia_runtime_for(handler):
                e = self.gpu_injection_error(handler, ctr)
                r = fail(e, exit_code=128) if e and e != "no-runtime" else None
            if r:
                return r
        return None

    def _init_container(self, spec, ctr):
        main, _ = _commands(ctr)
        # `until [ -f /run/nvidia/validations/X ]; do sleep N; done`: waits while X is absent
        m = re.search(r"until\s+\[\s+-f\s+(\S+)\s+\]", main) or re.search(r"until\s+test\s+-f\s+(\S+)", main)
        if m:
            hp, _ = host_path(spec, ctr, m.group(1))
            if hp is None or not hp.startswith(VALIDATIONS + "/"):
                return None  # waits on its own filesystem: never satisfied, as on a real node
            if hp[len(VALIDATIONS) + 1:] not in self.validations:
                return {"wait": True, "host": True, "reason": "PodInitializing",
                        "message": "init container %s waiting for %s" % (ctr.get("name"), m.group(1))}
            return None
        if re.search(r"until\s.*?/sys/module/nvidia/refcnt", main):
            # waits while the nvidia module's refcnt exceeds its dependent modules (nvidia-driver
            # _unload_driver's own test): while some process holds the GPUs open
            hp, _ = host_path(spec, ctr, "/sys/module/nvidia/refcnt")
            if hp == "/sys/module/nvidia/refcnt" and self.modules and self.holders:
                return {"wait": True, "host": True, "reason": "PodInitializing",
                        "message": "init container %s waiting for the GPUs to be released" % ctr.get("name")}
            return None
        if "create-dev-char-symlinks" in main:
            # nvidia-ctk system create-dev-char-symlinks (cmd/nvidia-ctk/system/create-dev-char-symlinks):
            # links /dev/char/MAJOR:MINOR for the NVIDIA device nodes found under DRIVER_ROOT/dev; with
            # --create-all every possible node, which needs the modules loaded for the majors
            dev_char = re.search(r"--dev-char-path[= ](\S+)", main)
            hp, _ = host_path(spec, ctr, dev_char.group(1) if dev_char else "/dev/char")
            if not self.modules:
                return fail("failed to create symlinks: NVIDIA kernel modules are not loaded")
            if hp == "/dev/char":
                self.dev_char = True
        return None

    def _driver(self, pod, spec, ctr):
        uid = (pod.get("metadata") or {}).get("uid")
        # nvidia-driver init: flock on /run/nvidia/nvidia-driver.pid
        if self.driver_pid and self.driver_pid != uid:
            return fail("An instance of the NVIDIA driver is already running, aborting")
        # init -> _should_skip_kernel_module_reload: modules loaded and DRIVER_CONFIG_DIGEST equal to the
        # stored one: userspace-only install, no unload
        digest = _env(ctr).get("DRIVER_CONFIG_DIGEST")
        if self.modules and digest and digest == self.driver_state:
            return None
        # init -> _unload_driver: refcnt of the nvidia module > 0 means someone holds the GPUs
        if self.modules and (self.holders - {uid}):
            return fail("Could not unload NVIDIA driver kernel modules, driver is in use")
        # init -> _kernel_requires_package -> _resolve_kernel_version: apt-cache show linux-headers-$(uname -r)
        # in the image's own package repositories (one image per OS: ubuntu22.04/, rhel9/ ...)
        ios = image_os(ctr.get("image"))
        if ios is not None and ios != self.os:
            return fail("Could not resolve Linux kernel version")
        # _install_prerequisites: rm -rf /lib/modules/${KERNEL_VERSION}; depmod (set -eu)
        hp, m = host_path(spec, ctr, "/lib/modules/x")
        if hp is not None and m is not None and m.get("readOnly"):
            return fail("rm: cannot remove '/lib/modules/%s': Read-only file system" % OSES[self.os][3])
        return None

    def _toolkit(self, pod, spec, ctr):
        env = _env(ctr)
        rt = env.get("RUNTIME", "docker")  # tools/container/nvidia-toolkit/run.go defaultRuntime
        if rt not in ("containerd", "crio", "docker"):
            return fail('unable to setup runtime: invalid runtime "%s"' % rt)
        # toolkit.go Install -> generateCDISpec (CDI_ENABLED): nvcdi.WithDriverRoot(DRIVER_ROOT_CTR_PATH)
        if (env.get("CDI_ENABLED") or env.get("ENABLE_CDI") or "").lower() in ("true", "1"):
            ctr_root = env.get("DRIVER_ROOT_CTR_PATH", RUN_DRIVER_ROOT)
            hp, _ = host_path(spec, ctr, ctr_root)
            if hp is None or not self._driver_at(hp) or not self.modules:
                return fail("unable to install toolkit: error generating CDI specification: failed to "
                            "genereate CDI spec for management containers: failed to locate driver libraries "
                            "under %s" % ctr_root)
        if rt == "crio":
            mode = env.get("CRIO_CONFIG_MODE", "hook")  # tools/container/crio/crio.go defaultConfigMode
            if mode == "hook":
                return None  # crio.go setupHook writes a file; no restart, nothing to fail
            if mode != "config":
                return fail("unable to setup runtime: invalid config-mode '%s'" % mode)
            # config mode restarts cri-o with systemd (defaultRestartMode) through HOST_ROOT_MOUNT
            hr = env.get("HOST_ROOT_MOUNT", "/host")
            hp, _ = host_path(spec, ctr, hr)
            if hp != "/" or self.runtime != "cri-o":
                return fail("unable to setup runtime: error restarting crio using systemd: exit status 5")
            return None
        # containerd/docker: restart mode "signal" dials RUNTIME_SOCKET to find the runtime's PID
        sock = env.get("RUNTIME_SOCKET") or env.get("CONTAINERD_SOCKET" if rt == "containerd" else "DOCKER_SOCKET") \
            or SOCKETS["containerd" if rt == "containerd" else "docker"]
        hp, _ = host_path(spec, ctr, sock)
        if hp is None or self.runtime != {"containerd": "containerd", "docker": "docker"}[rt] \
                or hp != SOCKETS[self.runtime]:
            return fail("unable to setup runtime: unable to restart %s: unable to dial: dial unix %s: "
                        "connect: no such file or directory" % (rt, sock))
        return None

    def _gpu_user(self, spec, ctr, handler, op):
        err = self.gpu_injection_error(handler, ctr)
        if err == "no-runtime" or (err is None and not self.modules):
            if op == "device-plugin":
                # k8s-device-plugin internal/plugin/factory.go getResourceManagers: nvml init fails and
                # FAIL_ON_INIT_ERROR (default true) makes it exit
                if (_env(ctr).get("FAIL_ON_INIT_ERROR") or "true").lower() == "false":
                    return None
                return fail("nvml init failed: ERROR_LIBRARY_NOT_FOUND")
            return fail("NVMLError: dlopen libnvidia-ml.so.1 failed", exit_code=10)  # docs/validator.md
        if err:
            return fail(err, exit_code=128)
        if op == "device-plugin":
            hp, _ = host_path(spec, ctr, PLUGIN_DIR + "/kubelet.sock")
            if hp != PLUGIN_DIR + "/kubelet.sock":
                # internal/plugin/server.go Register: dials the kubelet's registration socket
                return fail("failed to register plugin: dial unix %s/kubelet.sock: connect: no such file or "
                            "directory" % PLUGIN_DIR)
        return None

    # -- effects ----------------------------------------------------------------------------------------
    def started(self, pod, handler, ready):
        """A pod's containers run (contract() was None): what that changes on the host."""
        uid = (pod.get("metadata") or {}).get("uid")
        spec = pod.get("spec") or {}
        for ctr in spec.get("containers") or ():
            op = operand_of(ctr)
            env = _env(ctr)
            if op == "driver":
                self.driver_pid = uid
                self.modules = uid  # _install_driver + _load_driver
                self.driver_state = env.get("DRIVER_CONFIG_DIGEST")  # _store_driver_digest
                hp, m = host_path(spec, ctr, "/run/nvidia/driver")
                # _mount_rootfs: mount --rbind / ${RUN_DIR}/driver; seen on the host only through a
                # Bidirectional mount of /run/nvidia
                self.driver_root = (RUN_DRIVER_ROOT if hp == RUN_DRIVER_ROOT and m is not None
                                    and m.get("mountPropagation") == "Bidirectional" else None)
            elif op == "container-toolkit":
                self._configure_runtime(spec, ctr, env, uid)
            elif op == "device-plugin":
                self.plugin_socket = True
                self.holders.add(uid)
            elif op in ("dcgm-exporter", "validator") or (wants_gpus(ctr) and self.nvidia_runtime_for(handler)):
                self.holders.add(uid)
            if ready:
                self._probe_files(spec, ctr)
            pre = " ".join((((ctr.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
                           or [])
            for f in re.findall(r"rm\s+-f\s+(\S+)", pre):
                hp, _ = host_path(spec, ctr, f)
                if hp and hp.startswith(VALIDATIONS + "/"):
                    self.on_stop.setdefault(uid, set()).add(hp[len(VALIDATIONS) + 1:])

    def probe(self, pod):
        """Evaluates the containers' exec readiness probes against the host: `test -x` of the toolkit's
        runtime binary (on disk once installed), `grep -q nvidia` of the runtime's config (the handler is
        configured), `test -f` of the cri-o hook, `test -S` of the plugin socket, `touch` (always works).
        Anything else passes (not modelled). None when every probe passes, else the kubelet's message."""
        spec = pod.get("spec") or {}
        for ctr in spec.get("containers") or ():
            cmd = " ".join(((ctr.get("readinessProbe") or {}).get("exec") or {}).get("command") or [])
            for atom in (a.strip() for a in re.split(r"&&", cmd.split("-c", 1)[-1])):
                if not self._probe_atom(spec, ctr, atom):
                    return "Readiness probe failed: %s" % atom
        return None

    def _probe_atom(self, spec, ctr, atom):
        m = re.match(r"test -x (\S+)/toolkit/nvidia-container-runtime$", atom)
        if m:
            return self.toolkit_installed
        m = re.match(r"grep -q nvidia (\S+)$", atom)
        if m:
            hp, _ = host_path(spec, ctr, m.group(1))
            return bool(hp) and hp.startswith(CONFIG_DIRS[self.runtime] + "/") and (
                "nvidia" in self.handlers or self.default == "nvidia")
        m = re.match(r"test -f (\S+)/oci-nvidia-hook\.json$", atom)
        if m:
            hp, _ = host_path(spec, ctr, m.group(1))
            return self.crio_hook and hp == CRIO_HOOKS_DIR
        m = re.match(r"test -S (\S+)$", atom)
        if m:
            return self.plugin_socket
        return True

    def became_ready(self, pod):
        spec = pod.get("spec") or {}
        for ctr in spec.get("containers") or ():
            self._probe_files(spec, ctr)

    def _probe_files(self, spec, ctr):
        """Probes that `touch` a file under a hostPath /run/nvidia/validations leave it there once Ready."""
        _, probes = _commands(ctr)
        for f in re.findall(r"touch\s+(\S+)", probes):
            hp, _ = host_path(spec, ctr, f)
            if hp and hp.startswith(VALIDATIONS + "/"):
                self.validations.add(hp[len(VALIDATIONS) + 1:])

    def _configure_runtime(self, spec, ctr, env, uid):
        rt = env.get("RUNTIME", "docker")
        self.toolkit_pod = uid
        self.toolkit_installed = True
        set_default = (env.get("NVIDIA_RUNTIME_SET_AS_DEFAULT") or env.get("CONTAINERD_SET_AS_DEFAULT")
                       or env.get("DOCKER_SET_AS_DEFAULT") or env.get("CRIO_SET_AS_DEFAULT") or "true")
        name = env.get("NVIDIA_RUNTIME_NAME") or env.get("CONTAINERD_RUNTIME_CLASS") or "nvidia"
        self.ctk_driver_root = _norm(env.get("NVIDIA_DRIVER_ROOT", RUN_DRIVER_ROOT))
        if (env.get("CDI_ENABLED") or "").lower() in ("true", "1"):
            self.cdi_spec = True
        if rt == "crio" and env.get("CRIO_CONFIG_MODE", "hook") == "hook":
            hooks = env.get("CRIO_HOOKS_DIR", CRIO_HOOKS_DIR)
            hp, _ = host_path(spec, ctr, hooks)
            # setupHook writes the hook where CRIO_HOOKS_DIR points inside the container: cri-o sees it
            # only when that is its hooks directory on the host
            self.crio_hook = hp == CRIO_HOOKS_DIR
            return
        cfg = env.get("RUNTIME_CONFIG") or ""
        hp, _ = host_path(spec, ctr, cfg) if cfg else (None, None)
        if hp is None or not hp.startswith(CONFIG_DIRS[self.runtime] + "/"):
            return  # the edited file is the container's own: the host's runtime never sees it
        self.handlers.add(name)
        if set_default.lower() in ("true", "1"):
            self.default = name

    def crashed(self, uid):
        """A container of the pod exited (not a deletion): its processes are gone, so it holds nothing and
        the driver's pid lock is free; the driver script's _shutdown does not run (`trap - EXIT` once it
        waits for a signal), so the modules and its root stay."""
        self.holders.discard(uid)
        if self.driver_pid == uid:
            self.driver_pid = None

    def stopped(self, uid):
        """A pod is gone (deleted, or its node rebooted): what its containers' exit changes."""
        self.holders.discard(uid)
        self.validations -= self.on_stop.pop(uid, set())  # preStop hooks
        if self.driver_pid == uid:
            self.driver_pid = None
            # _wait_for_signal trap -> _shutdown: _unload_driver, and only if that worked _unmount_rootfs
            if not self.holders:
                self.modules = None
                self.driver_root = None
        if self.toolkit_pod == uid:
            self.toolkit_pod = None
            # run.go Run: after waitForSignal, cleanupRuntime reverts the runtime config / removes the hook
            self.handlers.discard("nvidia")
            self.default = "runc"
            self.crio_hook = False
            if self.host_toolkit:
                self._host_toolkit()

    def reboot(self):
        self.boot_id = str(uuid.uuid4())
        self.boots += 1
        self._boot()

    def to_json(self):
        return {"node": self.name, "bootID": self.boot_id, "boots": self.boots,
                "facts": {"runtime": self.runtime, "os": self.os, "kernel": OSES[self.os][3],
                          "gpus": self.gpus, "hostDriver": self.host_driver, "hostToolkit": self.host_toolkit},
                "modulesLoaded": bool(self.modules),
                "modulesBy": None if not self.modules else ("host" if self.modules == "host" else "driver-pod"),
                "gpuHolders": len(self.holders),
                "driverRoot": self.driver_root,
                "runtime": {"handlers": sorted(self.cri_handlers() - {""}), "default": self.default,
                            "crioHook": self.crio_hook, "driverRoot": self.ctk_driver_root},
                "cdiSpec": self.cdi_spec,
                "validations": sorted(self.validations),
                "devCharLinks": self.dev_char,
                "devicePluginSocket": self.plugin_socket}


def unready_status(status, rule):
    """A kubelet status whose containers run but fail their readiness probe: not Ready, nothing waiting."""
    st = dict(status)
    st["conditions"] = [dict(c, status="False", reason="ContainersNotReady",
                             message="containers with unready status") if c.get("type") in ("Ready", "ContainersReady")
                        else c for c in st.get("conditions") or ()]
    st["containerStatuses"] = [dict(c, ready=False) for c in st.get("containerStatuses") or ()]
    return st


def sandbox_status(pod, host_ip, rule, stamp):
    """Pod status while the kubelet cannot create the sandbox, or an init container still waits: Pending,
    not Ready, containers waiting (ContainerCreating / PodInitializing), no restarts counted."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    waiting_init = bool(rule.get("wait"))
    names = [c.get("name", "") for c in spec.get("containers") or ()]

    def cond(t, ok, reason=None):
        c = {"type": t, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": stamp}
        if not ok and reason:
            c["reason"] = reason
            c["message"] = "containers with unready status: [%s]" % " ".join(names)
        return c
    st = {"phase": "Pending", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
          "startTime": old.get("startTime") or stamp, "qosClass": old.get("qosClass") or "BestEffort",
          "conditions": [cond("PodReadyToStartContainers", waiting_init), cond("Initialized", not waiting_init,
                         "ContainersNotInitialized"), cond("Ready", False, "ContainersNotReady"),
                         cond("ContainersReady", False, "ContainersNotReady"), cond("PodScheduled", True)],
          "containerStatuses": [{"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                                 "ready": False, "started": False, "restartCount": 0,
                                 "state": {"waiting": {"reason": rule["reason"], "message": rule["message"]}}}
                                for c in spec.get("containers") or ()]}
    if spec.get("initContainers"):
        st["initContainerStatuses"] = [
            {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": False,
             "restartCount": 0, "started": waiting_init,
             "state": {"running": {"startedAt": stamp}} if waiting_init else
             {"waiting": {"reason": "PodInitializing"}}} for c in spec["initContainers"]]
    return st
