"""The Gluon tests import mxnet directly, so they run where mxnet imports: inside the
``mxnet`` toolchain (tests/toolchain/test_toolchain_gluon_suite.py starts them there from the
core suite) or on an image with mxnet installed. The core interpreter skips collecting them
rather than skipping each test."""

from __future__ import annotations

from caltech_edge._registry import available

collect_ignore_glob = [] if available("mxnet") else ["test_*.py"]
