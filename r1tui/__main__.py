from r1tui.cli import main

raise SystemExit(main())
