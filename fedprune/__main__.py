import sys

from fedprune.cli import main

sys.exit(main())
