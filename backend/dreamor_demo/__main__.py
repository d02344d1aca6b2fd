"""``python -m dreamor_demo`` is ``dreamor demo``."""
import sys

from .demo import main

sys.exit(main())
