"""Pipeline stages: enhance, amplify, evaluate, report, submit, and the main job ``run``."""
