import sys

from dcgm_standin.app import main

sys.exit(main())
