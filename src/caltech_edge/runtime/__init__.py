"""The device runtime: imports with numpy, OpenCV and one backend only (no torch, no mxnet).

Python 3.8-compatible source: it runs on older device images.
"""
