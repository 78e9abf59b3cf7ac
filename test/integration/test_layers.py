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
}


def headers_in(folder):
    return {os.path.basename(p) for p in glob.glob(os.path.join(CTRL, folder, "*.h"))}


def test_every_include_stays_within_its_layer():
    owner = {}
    for folder in os.listdir(CTRL):
        if os.path.isdir(os.path.join(CTRL, folder)):
            for h in headers_in(folder):
                owner[h] = folder
    for h in headers_in(""):
        owner[h] = "."
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
