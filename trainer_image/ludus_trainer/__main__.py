from ludus_trainer.cli import main

raise SystemExit(main())
