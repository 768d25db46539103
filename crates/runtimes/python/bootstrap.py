"""Flint's managed runtime for Python: the script Flint starts (`python3.x bootstrap.py`).

The runtime itself is the module flint_runtime_bootstrap beside this file. A script run as
__main__ is compiled from source at every start, a module is not: Flint byte-compiles that module
for each interpreter when it installs /var/runtime, so a cold start loads cached bytecode.
"""

import os
import sys

# This directory is sys.path[0] already, unless the function set PYTHONSAFEPATH. The runtime
# takes it off the path again before it loads the function.
_HERE = os.path.dirname(os.path.abspath(__file__))
if not sys.path or os.path.abspath(sys.path[0] or os.curdir) != _HERE:
    sys.path.insert(0, _HERE)

from flint_runtime_bootstrap import main  # noqa: E402

if __name__ == "__main__":
    main()
