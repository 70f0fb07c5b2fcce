"""frameworks stage of caltech-edge."""
