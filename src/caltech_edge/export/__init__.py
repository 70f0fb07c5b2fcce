"""export stage of caltech-edge."""
