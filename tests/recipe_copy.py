"""One way for tests to get a private copy of the AISHELL-1 recipe dir (the scripts, conf/, local/
and a link to utils/), so that a test's stages write their data/ and exp/ in its own tmp dir."""
import os
import shutil

SCRIPTS = ("run.sh", "cmd.sh", "path.sh")


def copy_recipe(work, repo_root, dirs=("local", "conf")):
    """Copy egs/aishell1's scripts and `dirs` into `work` and link utils/; returns `work`."""
    src = os.path.join(repo_root, "egs", "aishell1")
    for name in SCRIPTS:
        shutil.copy(os.path.join(src, name), os.path.join(work, name))
    for name in dirs:
        shutil.copytree(os.path.join(src, name), os.path.join(work, name))
    os.symlink(os.path.join(repo_root, "utils"), os.path.join(work, "utils"))
    return work
