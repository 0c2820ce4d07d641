import sys

from searxng_standin.app import main

sys.exit(main())
