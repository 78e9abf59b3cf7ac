"""The names kubesim's own pure-function tests use from the API layer, in one namespace.

apiext.py used to hold the whole API layer; it is split by concern into registry.py (resources,
discovery, /version, the CRD lifecycle), validation.py (built-in object rules), crds.py (CRDs and
custom-resource schemas), openapi.py, tables.py, jsonpath.py, with times in ktime.py. kubesim's modules
import those directly; this facade only keeps the tests' `apiext.X` spellings working
(test_kubesim_ssa.py, test_kubesim_disruption.py). Add nothing here.
"""

from crds import CRD_RES, apply_defaults, prune_value, validate_schema  # noqa: F401
from jsonpath import jsonpath_first  # noqa: F401
from ktime import parse_time  # noqa: F401
from registry import Registry  # noqa: F401
from tables import human_duration  # noqa: F401
