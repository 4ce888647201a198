"""Files `nerve init` copies into a new workspace (under files/)."""
