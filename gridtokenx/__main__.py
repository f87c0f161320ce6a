import sys

from gridtokenx.cli import main

sys.exit(main())
