"""Configuration: strict TOML reading (unknown keys are errors, numbers are exact)."""
