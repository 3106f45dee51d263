"""Planning: turn an Image recipe into ordered steps, each with a content-addressed cache key."""
