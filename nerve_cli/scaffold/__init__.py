"""What `nerve init` copies into a new workspace (under workspace-template/)."""
