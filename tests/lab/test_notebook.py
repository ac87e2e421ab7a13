"""``mbmlab.lab.notebook.start``, the first call of every notebook."""
import os
import subprocess
import sys


def test_start_quiets_transformers_without_importing_it(tmp_path):
    """01_collect never imports transformers; start must not import it either (~2.5 s per run of
    01), yet a later import is as quiet as before (mutation: start imports transformers → fails;
    the verbosity not set → fails)."""
    code = f"""
import sys
from mbmlab.lab import notebook, params as P
namespace = {{"run_dir": {str(tmp_path)!r}, **P.for_notebook("01_collect", P.resolve("tiny"))}}
notebook.start("01_collect", namespace["run_dir"], namespace)
assert "transformers" not in sys.modules, "start imported transformers"
import transformers
assert transformers.logging.get_verbosity() == transformers.logging.ERROR, transformers.logging.get_verbosity()
"""
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
