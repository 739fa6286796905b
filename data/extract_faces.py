"""``python -m data.extract_faces``: the face-extraction tool's entry point (the code lives in ``data.faces``)."""

import sys

from common.cli import run

from .faces.cli import main

if __name__ == "__main__":
    sys.exit(run(main))
