"""Write a new store revision: `python scripts/migration.py "add models licence"`.

Autogenerates collector/store/migrations/versions/NNNN_<slug>.py from the difference
between collector/store/schema.py and a scratch SQLite database at the current head, then
formats it. Read the result before committing: autogenerate misses renames (it sees a drop
and an add) and server defaults, and a new NOT NULL column on a table with rows needs a
server_default or a data step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402  (after the path is set)
from sqlalchemy import create_engine  # noqa: E402

from collector.store import migrate  # noqa: E402


def _next_id() -> str:
    heads = migrate.scripts().get_heads()
    if len(heads) > 1:
        raise SystemExit(f"several heads {heads}: give one of them a new down_revision first")
    return f"{int(heads[0]) + 1:04d}" if heads else migrate.FIRST


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", help="what the revision does, e.g. 'add models licence'")
    args = parser.parse_args(argv)
    rev_id = _next_id()
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            with engine.begin() as conn:
                config = migrate.alembic_config(conn)
                command.upgrade(config, "head")
                written = command.revision(
                    config, message=args.message, autogenerate=True, rev_id=rev_id
                )
        finally:
            engine.dispose()
    scripts = written if isinstance(written, list) else [written]
    paths = [str(script.path) for script in scripts if script is not None]
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "format", "--quiet", *paths], check=False)
        subprocess.run([str(ruff), "check", "--fix", "--quiet", *paths], check=False)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
