"""Print pip constraints that pin every dependency in setup.cfg to the lowest release its
lower bound admits (`name>=X` -> the oldest published version >= X), so that CI can prove
the bounds are true. torch is left out: the CPU wheel CI installs is the only torch here.

    python .ci/lowest_constraints.py [--extras dev] > lowest.txt
"""

import argparse
import configparser
import re
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"torch"}


def bounds(extras: list[str]) -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    out = {}
    for line in filter(None, (line.strip() for line in lines)):
        match = re.match(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)", line)
        if not match:
            sys.exit(f"setup.cfg: {line!r} has no lower bound (every dependency needs one)")
        out[match[1]] = match[2]
    return out


def lowest_release(name: str, bound: str) -> str:
    listing = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True, text=True)
    found = re.search(r"Available versions: (.*)", listing.stdout)
    if not found:
        sys.exit(f"cannot list releases of {name}: {listing.stderr.strip()[-300:]}")
    releases = [Version(v.strip()) for v in found[1].split(",")]
    admitted = sorted(v for v in releases if v >= Version(bound) and not v.is_prerelease)
    if not admitted:
        sys.exit(f"no release of {name} >= {bound}")
    return str(admitted[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", nargs="*", default=["dev"])
    args = parser.parse_args()
    for name, bound in bounds(args.extras).items():
        if name not in SKIP:
            print(f"{name}=={lowest_release(name, bound)}")


if __name__ == "__main__":
    main()
