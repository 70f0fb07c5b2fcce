"""compress stage of caltech-edge."""
