"""`python -m outreach_core`: runs the command line (`entrypoints.cli.main`), exits with its code."""

import sys

from outreach_core.entrypoints.cli import main

sys.exit(main())
