"""Prints, one per line, the requirement specifiers (arguments) that the running interpreter's
installed distributions do not satisfy: missing, or at a version outside the specifier.
Checked offline, with pip's `packaging`. Used by ci-test.sh and build-dist.sh to install only
what is missing."""

import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

for spec in sys.argv[1:]:
    requirement = Requirement(spec)
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        print(spec)
        continue
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        print(spec)
