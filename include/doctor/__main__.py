import sys

from include.doctor.cli import main

sys.exit(main())
