"""``python -m dbnb`` runs the ``dbnb`` command line."""

from dbnb.cli import main

raise SystemExit(main())
