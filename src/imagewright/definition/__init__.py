"""Image definitions: the immutable recipe a user writes."""
