"""moto's server with one inefficiency taken out, for `cargo xtask bench compliance`.

moto 5 decides which of its services a request is for by asking, on every request, whether the host
is one of its modules, and lists its package directory to answer (`moto.backends.list_of_moto_modules`:
a `listdir` and one `stat` per module, about 1.4 ms a request on the bench machine, a third of what moto
spends on a `DescribeTaskDefinition`). The list cannot change while the server runs, so it is read once.
Nothing else differs from `moto_server`; suma and Prowler are measured against the same server.

Usage: python moto_cached.py [moto_server arguments]
"""

import sys

import moto.backends

_MODULES = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _MODULES

from moto.server import main  # noqa: E402  (after the patch, which it reads at call time)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
