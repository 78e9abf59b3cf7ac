"""The layers of controller/ (controller/README.md) hold: a file includes project headers only from its own
folder and the folders below it. Read from the sources; no build needed."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CTRL = os.path.join(ROOT, "controller")

# folder -> the folders its files may include from (besides itself)
ALLOWED = {
    "base": set(),
    "client": {"base"},
    "domain": {"base"},
    "cmd": {"base", "client", "domain"},
    ".": {"base", "client", "domain", "cmd"},
    "validator": {"base", "client"},
}


def headers_in(folder):
    return {os.path.basename(p) for p in glob.glob(os.path.join(CTRL, folder, "*.h"))}


def test_every_include_stays_within_its_layer():
    owner = {}
    for folder in sorted(os.listdir(CTRL)):
        if os.path.isdir(os.path.join(CTRL, folder)):
            for h in headers_in(folder):
                # The folders share one include path (-I each): a second header of one name would
                # silently shadow the first.
                assert h not in owner, "%s in both %s/ and %s/" % (h, owner[h], folder)
                owner[h] = folder
    for h in headers_in(""):
        assert h not in owner, "%s in both %s/ and controller/" % (h, owner[h])
        owner[h] = "."
    # The controller's own files (.) may use a command only from main.c, which dispatches to them.
    bad = []
    for folder, allowed in ALLOWED.items():
        files = glob.glob(os.path.join(CTRL, folder, "*.[ch]"))
        assert files, folder
        for path in files:
            with open(path) as f:
                for inc in re.findall(r'^#include "([^"]+)"', f.read(), re.M):
                    where = owner.get(os.path.basename(inc))
                    if where is None:
                        bad.append("%s: %s is no project header" % (os.path.relpath(path, ROOT), inc))
                    elif where == "cmd" and folder == "." and os.path.basename(path) != "main.c":
                        bad.append("%s includes the command header %s" % (os.path.relpath(path, ROOT), inc))
                    elif where != folder and where not in allowed:
                        bad.append("%s includes %s (%s/)" % (os.path.relpath(path, ROOT), inc, where))
    assert not bad, "\n".join(bad)


def test_each_layer_folder_has_a_readme_naming_every_file():
    for folder in ALLOWED:
        with open(os.path.join(CTRL, folder, "README.md")) as f:
            text = f.read()
        for path in glob.glob(os.path.join(CTRL, folder, "*.[ch]")):
            stem = os.path.splitext(os.path.basename(path))[0]
            assert "`%s`" % stem in text or "`%s" % os.path.basename(path) in text, (folder, stem)


# The project's shared vocabulary (docs/CODING_STYLE.md "One prefix rule"): these may export gpc_* names.
VOCABULARY = {"model", "policy", "policy_fields", "embedded", "alloc", "errors", "log", "xmacro"}


def exported_functions(header):
    with open(header) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    text = re.sub(r"^#.*$", "", text, flags=re.M)
    names = re.findall(r"^(?!typedef|struct\s+\w+\s*\{|enum|static)[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(", text, re.M)
    names += re.findall(r"typedef[^;]*?\(\s*\*\s*(\w+)\s*\)", text)
    return set(names)


def test_exported_functions_carry_their_files_prefix():
    bad = []
    for header in glob.glob(os.path.join(CTRL, "**", "*.h"), recursive=True):
        stem = os.path.basename(header)[:-2]
        for name in exported_functions(header):
            if name.startswith(stem + "_") or name.startswith("gpc_" + stem + "_") or name == stem or name.isupper():
                continue
            if (name.startswith("gpc_") and stem in VOCABULARY) or (stem == "log" and name.startswith("log_")):
                continue
            bad.append("%s: %s" % (os.path.relpath(header, ROOT), name))
    assert not bad, "\n".join(sorted(bad))
