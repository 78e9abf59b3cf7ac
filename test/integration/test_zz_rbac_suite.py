"""The manifests' RBAC against every request the controller made during the
whole integration suite (issue 6): each one must be allowed, and no rule may
go unused. The file sorts last so that it runs after the suites that drive
the controller; conftest.py collects the controller's requests (kubesim's
per-client counters) when each sim is torn down.

test_manifests.py checks the same both ways on one dedicated scenario, so a
run of that file alone still proves the rules; this test widens it to the
injected errors, restarts, conflicts and leader changes of the other suites.

The other suites run the controller with its default --namespace (gpu-policy-system) for everything;
the Deployment puts the operands in gpu-policy-operands (--namespace) and keeps only its Lease in
gpu-policy-system (--leader-election-namespace). Their operand requests are checked as the Deployment
would send them: in the operands' namespace.
"""

import pytest

from kubesim_client import CONTROLLER_REQUESTS
from replica import NS
from test_manifests import OPS, SA, UNUSED_OK, Rbac, kustomize, needed_verbs

# What the controller's --namespace holds: the operands' objects (a Lease follows --leader-election-namespace).
OPERAND_RESOURCES = {"daemonsets", "pods", "services", "servicemonitors"}


def test_every_request_of_the_suite_is_allowed_and_every_rule_used():
    if not CONTROLLER_REQUESTS:
        pytest.skip("no controller ran in this session: run it with the whole integration suite")
    rbac = Rbac(kustomize("manifests"), SA)
    denied, used = set(), set()
    for req in CONTROLLER_REQUESTS:
        resource = req["resource"] + ("/" + req["subresource"] if req["subresource"] else "")
        ns = OPS if req["namespace"] == NS and req["resource"] in OPERAND_RESOURCES else req["namespace"]
        for verb in needed_verbs(req):
            hits = rbac.matching(verb, req["group"], resource, ns, req["name"])
            if not hits:
                denied.add("%s %s/%s ns=%r name=%r" % (verb, req["group"], resource, req["namespace"], req["name"]))
            used.update((i, verb) for i in hits)
    assert not denied, "requests the manifests' RBAC would forbid:\n  " + "\n  ".join(sorted(denied))
    unused = ["%s %s %s ns=%s" % (verb, rule["apiGroups"], rule["resources"], ns)
              for i, (ns, rule) in enumerate(rbac.bound) for verb in rule["verbs"]
              if (i, verb) not in used
              and not all((g, r, verb) in UNUSED_OK for g in rule["apiGroups"] for r in rule["resources"])]
    assert not unused, "rules no request of the suite needed:\n  " + "\n  ".join(unused)
