"""``python -m data.extract_faces``: the face-extraction tool's entry point (the code lives in ``data.faces``).

Its public names are re-exported here, so ``from data.extract_faces import ...`` keeps working.
"""

import sys

from common.cli import run

from .faces import *  # noqa: F403
from .faces import __all__  # noqa: F401
from .faces.cli import main

if __name__ == "__main__":
    sys.exit(run(main))
