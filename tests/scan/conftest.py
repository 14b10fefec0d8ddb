import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for pg_server (import-mode=importlib)

from pg_server import pg_server, pg_url  # noqa: F401  (fixtures)
