import sys

from airflow_doctor.cli import main

sys.exit(main())
