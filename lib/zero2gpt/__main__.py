"""``python -m zero2gpt``: the same as the ``zero2gpt`` command."""

from zero2gpt.cli import main

raise SystemExit(main())
