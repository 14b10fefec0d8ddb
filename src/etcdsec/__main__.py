from etcdsec.cli import main

raise SystemExit(main())
