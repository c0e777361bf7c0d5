"""``python -m models FILE``: MiniLM sentence-embedding fidelity of a compressed checkpoint."""

from models.fidelity import main

raise SystemExit(main())
