import sys

from skinscan.cli import main

sys.exit(main())
