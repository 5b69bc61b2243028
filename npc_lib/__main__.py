import sys

from npc_lib.cli import main

sys.exit(main())
