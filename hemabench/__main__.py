from hemabench.cli import main

raise SystemExit(main())
