import sys

from cnnlens.cli import main

sys.exit(main())
