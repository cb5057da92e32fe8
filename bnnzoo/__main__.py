import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # `python -m bnnzoo` still imports bnnzoo first

from bnnzoo.cli import main  # noqa: E402

sys.exit(main())
