# A pool test deployment: deployment b has the same file and function
# names with other answers, so the pool must keep their code apart.
import os
import sys
import time
from pathlib import Path

ME = "a"


def who(event, context):
    print(f"stdout-{ME} {event.data}")
    print(f"stderr-{ME} {event.data}", file=sys.stderr)
    # Relative to the module, not to the working directory (the host's own).
    here = Path(__file__).parent
    return {"who": ME, "file": (here / "name.txt").read_text().strip(), "cwdIsDir": os.getcwd() == str(here)}


def slow(event, context):
    context.log("started")
    time.sleep(20)
    return "late"


def crash(event, context):
    os._exit(3)


def spin(event, context):
    while True:
        pass


def loaded(event, context):
    """Counts the pool test deployments' entry modules in the host."""
    return len([m for m in list(sys.modules.values()) if "testdata/pool/" in (getattr(m, "__file__", None) or "")])
