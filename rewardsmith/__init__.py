"""rewardsmith: write, check, train and export reward functions for Gymnasium environments."""

__version__ = "0.1.0"
