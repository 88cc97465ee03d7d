from caesweep.cli import main

raise SystemExit(main())
