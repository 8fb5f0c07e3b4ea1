from outreach_core.entrypoints.cli import main

raise SystemExit(main())
