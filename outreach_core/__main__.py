from outreach_core.cli import main

raise SystemExit(main())
