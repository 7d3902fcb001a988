"""``python -m s2s.cli ...`` is the ``s2s`` command."""

from s2s.cli.main import main

raise SystemExit(main())
