"""skinscan: skin-infection photo triage (not a diagnosis)."""
__version__ = "0.1.0"
